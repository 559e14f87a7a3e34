/**
 * Reading YAML defensively (size, depth and alias caps; errors with line and column) and the small
 * helpers every YAML-backed settings parser uses for its messages: "did you mean" suggestions and
 * a short, safe rendering of a user value. Shared by the server configuration and plugin
 * config.yaml files; a leaf module.
 */

import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { errorMessage } from "./errors.ts";

/** Deepest nesting accepted in any YAML document we read. */
const MAX_YAML_DEPTH = 64;
/**
 * Alias budget handed to the `yaml` package (uses of an anchor × nodes behind it): large enough for
 * a PV template reused by thousands of PVs, small enough to stop "billion laughs" documents.
 */
const MAX_YAML_ALIASES = 10_000;

/** A failure of `parseYamlText`: `path` is the dotted field path ("" for the document). */
export interface YamlFailure {
  ok: false;
  path: string;
  expected: string;
  message: string;
}

/** Parses YAML text defensively: size cap, syntax errors with line:col, alias-bomb and depth caps. */
export function parseYamlText(
  text: string,
  opts: { maxBytes: number; maxDepth?: number; maxAliasCount?: number },
): { ok: true; value: unknown } | YamlFailure {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > opts.maxBytes) {
    return {
      ok: false,
      path: "",
      expected: `a file of at most ${opts.maxBytes} bytes`,
      message: `file too large (${bytes} bytes > ${opts.maxBytes})`,
    };
  }
  const maxDepth = opts.maxDepth ?? MAX_YAML_DEPTH;
  // The parser recurses per nesting level: refuse absurd bracket/indent depth before parsing so a
  // hostile file cannot overflow the stack.
  const rough = roughNestingDepth(text);
  if (rough > maxDepth * 4 + 16) {
    return {
      ok: false,
      path: "",
      expected: `nesting depth at most ${maxDepth}`,
      message: `nesting too deep (more than ${maxDepth} levels)`,
    };
  }
  const lineCounter = new LineCounter();
  let value: unknown;
  try {
    const doc = parseDocument(text, {
      lineCounter,
      prettyErrors: false,
      // The package's own duplicate-key check compares every key with every other one of its
      // mapping (seconds for a config.yaml of 4096 PVs); firstDuplicateKey does it in one pass.
      uniqueKeys: false,
      strict: true,
    });
    const dup = firstDuplicateKey(doc.contents);
    const parseErr = doc.errors[0];
    const err =
      dup !== null && (parseErr === undefined || dup.offset < parseErr.pos[0])
        ? { pos: [dup.offset], message: "Map keys must be unique" }
        : parseErr;
    if (err) {
      const pos = lineCounter.linePos(err.pos[0] ?? 0);
      const first = err.message.split("\n")[0] ?? err.message;
      return {
        ok: false,
        path: "",
        expected: "valid YAML",
        message: `YAML syntax error at line ${pos.line}, column ${pos.col}: ${first}`,
      };
    }
    value = doc.toJS({ maxAliasCount: opts.maxAliasCount ?? MAX_YAML_ALIASES });
  } catch (e) {
    return thrownFailure(e, maxDepth);
  }
  const depthPath = findTooDeep(value, maxDepth);
  if (depthPath !== null) {
    return {
      ok: false,
      path: depthPath,
      expected: `nesting depth at most ${maxDepth}`,
      message: `nesting too deep (more than ${maxDepth} levels)`,
    };
  }
  return { ok: true, value };
}

/** What the `yaml` package threw, as a failure: alias bombs and stack overflows named. */
function thrownFailure(e: unknown, maxDepth: number): YamlFailure {
  const msg = errorMessage(e);
  if (/alias/i.test(msg)) {
    return {
      ok: false,
      path: "",
      expected: "a document without excessive alias expansion",
      message: `YAML refused: ${msg.split("\n")[0]}`,
    };
  }
  if (e instanceof RangeError) {
    return {
      ok: false,
      path: "",
      expected: `nesting depth at most ${maxDepth}`,
      message: "nesting too deep",
    };
  }
  return { ok: false, path: "", expected: "valid YAML", message: `YAML error: ${msg}` };
}

/**
 * The first key repeated within one mapping (document order), as the `yaml` package's
 * `uniqueKeys` defines it — the same scalar value — found with one Set per mapping.
 */
function firstDuplicateKey(node: unknown): { offset: number } | null {
  if (isMap(node)) {
    const seen = new Set<unknown>();
    for (const item of node.items) {
      if (!isPair(item)) continue;
      const key = item.key;
      const id = isScalar(key) ? key.value : key;
      if (seen.has(id)) {
        const range = (key as { range?: [number, number, number] } | null)?.range;
        return { offset: range?.[0] ?? 0 };
      }
      seen.add(id);
    }
    for (const item of node.items) {
      const inner = firstDuplicateKey(isPair(item) ? item.value : null);
      if (inner !== null) return inner;
    }
    return null;
  }
  if (isSeq(node)) {
    for (const item of node.items) {
      const inner = firstDuplicateKey(item);
      if (inner !== null) return inner;
    }
  }
  return null;
}

// Characters after which a quote opens a quoted scalar: space, tab, newline, [ { , :
const QUOTE_OPENERS = new Set([0x20, 0x09, 0x0a, 0x5b, 0x7b, 0x2c, 0x3a]);

// Rough upper bound of flow-collection nesting and indentation levels, computed without parsing.
// Brackets inside quoted scalars and comments are skipped so ordinary strings do not count.
function roughNestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let quote = 0; // 0, or the char code of the open quote
  let prev = 0x0a;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quote !== 0) {
      if (c === 0x5c && quote === 0x22)
        i++; // backslash escape in "…"
      else if (c === quote || c === 0x0a) quote = 0;
    } else if (c === 0x23 && (prev === 0x20 || prev === 0x0a || prev === 0x09)) {
      while (i < text.length && text.charCodeAt(i) !== 0x0a) i++; // comment
    } else if ((c === 0x22 || c === 0x27) && QUOTE_OPENERS.has(prev)) {
      // Only where YAML starts a quoted scalar: `it's` in a plain scalar is not a quote.
      quote = c;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > max) max = depth;
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
    prev = text.charCodeAt(i);
  }
  let maxIndent = 0;
  for (const line of text.split("\n")) {
    let n = 0;
    while (n < line.length && (line[n] === " " || line[n] === "-" || line[n] === "?")) n++;
    if (n > maxIndent) maxIndent = n;
  }
  return Math.max(max, Math.floor(maxIndent / 2));
}

function findTooDeep(value: unknown, maxDepth: number): string | null {
  const walk = (v: unknown, depth: number, path: string): string | null => {
    if (v === null || typeof v !== "object") return null;
    if (depth > maxDepth) return path;
    const entries: [string, unknown][] = Array.isArray(v)
      ? v.map((x, i) => [`[${i}]`, x])
      : Object.entries(v as Record<string, unknown>).map(([k, x]) => [`.${k}`, x]);
    for (const [k, x] of entries) {
      const r = walk(x, depth + 1, path + k);
      if (r !== null) return r;
    }
    return null;
  };
  const r = walk(value, 0, "");
  return r === null ? null : r.replace(/^\./, "");
}
