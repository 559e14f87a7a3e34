/**
 * Reading /metrics in tests with a strict parser of the Prometheus text exposition format
 * (version 0.0.4): every line must be a `# HELP`, a `# TYPE` or a sample a Prometheus server
 * accepts (metric name, quoted and escaped label values, a float or NaN/+Inf/-Inf, optional
 * timestamp); a sample's family must have been typed before it; histogram series must have
 * cumulative buckets ending at +Inf with `_count` equal to it. Anything else throws.
 * (parse-prometheus-text-format was tried first: it drops the labels of histogram series.)
 */

export type PromType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface PromSample {
  /** Full sample name (with `_bucket`/`_count`/`_sum` for histograms). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: PromType;
  help: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(s: string, line: string): number {
  if (s === "NaN") return Number.NaN;
  if (s === "+Inf" || s === "Inf") return Number.POSITIVE_INFINITY;
  if (s === "-Inf") return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`bad value in: ${line}`);
  return Number(s);
}

/** Parses `{a="x",b="y"}` starting at `i` (the `{`); returns the labels and the index after `}`. */
function parseLabels(line: string, i: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++;
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i);
    const name = line.slice(i, eq);
    if (eq < 0 || !LABEL_NAME.test(name) || line[eq + 1] !== '"') {
      throw new Error(`bad label in: ${line}`);
    }
    let j = eq + 2;
    let value = "";
    for (;;) {
      const c = line[j];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === "\\") {
        const n = line[j + 1];
        if (n === "n") value += "\n";
        else if (n === "\\" || n === '"') value += n;
        else throw new Error(`bad escape in: ${line}`);
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    if (name in labels) throw new Error(`repeated label ${name} in: ${line}`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new Error(`expected , or } in: ${line}`);
  }
  return [labels, i + 1];
}

function familyOf(families: Map<string, PromFamily>, sampleName: string): PromFamily | undefined {
  const direct = families.get(sampleName);
  if (direct !== undefined) return direct;
  const m = /^(.*)_(bucket|count|sum)$/.exec(sampleName);
  const f = m ? families.get(m[1] ?? "") : undefined;
  return f && (f.type === "histogram" || f.type === "summary") ? f : undefined;
}

function checkHistograms(families: Map<string, PromFamily>): void {
  for (const f of families.values()) {
    if (f.type !== "histogram") continue;
    const series = new Map<string, PromSample[]>();
    for (const s of f.samples) {
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(Object.entries(rest).sort());
      series.set(key, [...(series.get(key) ?? []), s]);
    }
    for (const samples of series.values()) {
      const buckets = samples.filter((s) => s.name.endsWith("_bucket"));
      const count = samples.find((s) => s.name.endsWith("_count"));
      let last = -1;
      for (const b of buckets) {
        if (b.value < last) throw new Error(`${f.name}: buckets not cumulative`);
        last = b.value;
      }
      if (buckets.at(-1)?.labels.le !== "+Inf" || count?.value !== last) {
        throw new Error(`${f.name}: +Inf bucket missing or not equal to _count`);
      }
    }
  }
}

/** Parses and checks the whole text; throws on the first problem. */
export function parseMetrics(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const help = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (m === null || !NAME.test(m[2] ?? "")) throw new Error(`bad comment line: ${line}`);
      const name = m[2]!;
      if (m[1] === "HELP") help.set(name, m[3] ?? "");
      else {
        const type = m[3] as PromType;
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(type)) {
          throw new Error(`bad type: ${line}`);
        }
        if (families.has(name)) throw new Error(`family typed twice: ${name}`);
        families.set(name, { name, type, help: help.get(name) ?? "", samples: [] });
      }
      continue;
    }
    const nameEnd = line.search(/[{ ]/);
    const name = line.slice(0, nameEnd);
    if (nameEnd < 0 || !NAME.test(name)) throw new Error(`bad sample name: ${line}`);
    let labels: Record<string, string> = {};
    let i = nameEnd;
    if (line[i] === "{") [labels, i] = parseLabels(line, i);
    const rest = line.slice(i).split(" ");
    if (rest[0] !== "" || rest.length < 2 || rest.length > 3)
      throw new Error(`bad sample: ${line}`);
    if (rest[2] !== undefined && !/^-?\d+$/.test(rest[2]))
      throw new Error(`bad timestamp: ${line}`);
    const value = parseValue(rest[1] ?? "", line);
    const fam = familyOf(families, name);
    if (fam === undefined) throw new Error(`sample before its # TYPE: ${line}`);
    if (fam.type === "counter" && !(value >= 0)) throw new Error(`negative counter: ${line}`);
    fam.samples.push({ name, labels, value });
  }
  checkHistograms(families);
  return families;
}

function matches(s: PromSample, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

/**
 * The value of the first sample of `name` whose labels include `labels`; for a histogram, its
 * `_count`. Undefined when there is none.
 */
export function sample(
  m: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const f = m.get(name);
  if (f === undefined) return undefined;
  const want = f.type === "histogram" ? `${name}_count` : name;
  return f.samples.find((s) => s.name === want && matches(s, labels))?.value;
}

/** Sum over the samples of `name` matching `labels` (histograms: their counts). */
export function total(
  m: Map<string, PromFamily>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const f = m.get(name);
  const want = f?.type === "histogram" ? `${name}_count` : name;
  let sum = 0;
  for (const s of f?.samples ?? []) if (s.name === want && matches(s, labels)) sum += s.value;
  return sum;
}
