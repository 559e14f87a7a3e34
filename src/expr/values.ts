/**
 * Values of the expression language and the Python-like semantics of its operators.
 *
 * The language is the one 2.7.9 config.yaml files use (a subset of Python expressions), so its
 * operators behave as Python's do: `and`/`or` return an operand, `%` takes the sign of the
 * divisor, `==` never throws, `<` between unrelated types does. Numbers are JS doubles (Python
 * distinguishes int and float; the only visible difference is that `str(1.0)` prints `1`).
 */

/** A value an expression can produce or read. Tuples are arrays marked in `TUPLES`. */
export type Value = number | string | boolean | null | readonly Value[];

/** Longest string an expression may build (characters). */
export const MAX_STRING = 65_536;
/** Longest list an expression may build or receive (elements). */
export const MAX_LIST = 100_000;

/** Arrays created by tuple literals: they print as `(a, b)` and spread in `%` formatting. */
const TUPLES = new WeakSet<readonly Value[]>();

/** Marks `items` as a tuple and returns it. */
export function tuple(items: Value[]): readonly Value[] {
  TUPLES.add(items);
  return items;
}

/** An error raised while evaluating; the evaluator adds the position. */
export class ValueError extends Error {
  constructor(
    /** Python's exception class name, kept so messages read like upstream's logs. */
    readonly pyType:
      | "TypeError"
      | "ValueError"
      | "ZeroDivisionError"
      | "OverflowError"
      | "NameError",
    message: string,
  ) {
    super(message);
  }
}

/** Python's type name of a value, for error messages. */
export function typeName(v: Value): string {
  if (v === null) return "NoneType";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "string") return "str";
  return TUPLES.has(v) ? "tuple" : "list";
}

/** Python truthiness. */
export function truthy(v: Value): boolean {
  if (v === null) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  if (typeof v === "string") return v.length > 0;
  return v.length > 0;
}

/** The number behind a bool or number, or undefined for other types. */
export function numeric(v: Value): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  return undefined;
}

/** A number argument of a function, or a TypeError naming the function. */
export function needNumber(v: Value | undefined, fn: string): number {
  const n = v === undefined ? undefined : numeric(v);
  if (n === undefined) {
    throw new ValueError("TypeError", `${fn}() needs a number, not '${typeName(v ?? null)}'`);
  }
  return n;
}

/** Python's float repr: shortest round-trip digits, exponent form below 1e-4 and from 1e16. */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  const exp = x === 0 ? 0 : Math.floor(Math.log10(Math.abs(x)));
  if (exp >= -4 && exp < 16) return String(x);
  const [mant, e] = x.toExponential().split("e") as [string, string];
  const sign = e.startsWith("-") ? "-" : "+";
  const digits = e.replace(/^[-+]/, "").padStart(2, "0");
  return `${mant}e${sign}${digits}`;
}

function reprString(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  const body = s
    .replace(/\\/g, "\\\\")
    .replace(/\n/g, "\\n")
    .replace(/\t/g, "\\t")
    .replace(/\r/g, "\\r");
  return q + (q === "'" ? body.replace(/'/g, "\\'") : body) + q;
}

/** Python's repr(). */
export function repr(v: Value): string {
  if (typeof v === "string") return reprString(v);
  return str(v);
}

/** Python's str(). */
export function str(v: Value): string {
  if (v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return v;
  const inner = v.map(repr).join(", ");
  if (TUPLES.has(v)) return v.length === 1 ? `(${inner},)` : `(${inner})`;
  return `[${inner}]`;
}

/** Python's `==`: never throws; bools equal their numbers; lists compare element-wise. */
export function equals(a: Value, b: Value): boolean {
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== undefined || nb !== undefined) return na === nb;
  if (!Array.isArray(a) || !Array.isArray(b)) return a === b;
  if (a.length !== b.length || TUPLES.has(a) !== TUPLES.has(b)) return false;
  for (let i = 0; i < a.length; i++) if (!equals(a[i] as Value, b[i] as Value)) return false;
  return true;
}

/** Python's ordering: -1, 0, 1, or NaN when a NaN is involved; TypeError across types. */
export function compare(a: Value, b: Value, op: string): number {
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== undefined && nb !== undefined) return na < nb ? -1 : na > nb ? 1 : na === nb ? 0 : NaN;
  if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
  if (Array.isArray(a) && Array.isArray(b) && TUPLES.has(a) === TUPLES.has(b)) {
    const la = a as readonly Value[];
    const lb = b as readonly Value[];
    for (let i = 0; i < Math.min(la.length, lb.length); i++) {
      if (!equals(la[i] as Value, lb[i] as Value))
        return compare(la[i] as Value, lb[i] as Value, op);
    }
    return la.length - lb.length === 0 ? 0 : la.length < lb.length ? -1 : 1;
  }
  throw new ValueError(
    "TypeError",
    `'${op}' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`,
  );
}

function unsupported(op: string, a: Value, b: Value): ValueError {
  return new ValueError(
    "TypeError",
    `unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`,
  );
}

/** Bounded repetition of a string or list (`"ab" * 3`, `[0] * 5`). */
function repeat(seq: string | readonly Value[], times: number): Value {
  if (!Number.isInteger(times)) {
    throw new ValueError("TypeError", "can't multiply sequence by non-int of type 'float'");
  }
  const n = Math.max(0, times);
  if (typeof seq === "string") {
    if (seq.length * n > MAX_STRING) {
      throw new ValueError("OverflowError", `string longer than ${MAX_STRING} characters`);
    }
    return seq.repeat(n);
  }
  if (seq.length * n > MAX_LIST) {
    throw new ValueError("OverflowError", `list longer than ${MAX_LIST} elements`);
  }
  const out: Value[] = [];
  for (let i = 0; i < n; i++) out.push(...seq);
  return TUPLES.has(seq) ? tuple(out) : out;
}

/** `a + b`: numbers, string and list concatenation (bounded). */
export function add(a: Value, b: Value): Value {
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== undefined && nb !== undefined) return na + nb;
  if (typeof a === "string" && typeof b === "string") {
    if (a.length + b.length > MAX_STRING) {
      throw new ValueError("OverflowError", `string longer than ${MAX_STRING} characters`);
    }
    return a + b;
  }
  if (Array.isArray(a) && Array.isArray(b) && TUPLES.has(a) === TUPLES.has(b)) {
    if (a.length + b.length > MAX_LIST) {
      throw new ValueError("OverflowError", `list longer than ${MAX_LIST} elements`);
    }
    const out = [...(a as readonly Value[]), ...(b as readonly Value[])];
    return TUPLES.has(a) ? tuple(out) : out;
  }
  throw unsupported("+", a, b);
}

/** `a - b`. */
export function sub(a: Value, b: Value): number {
  const na = numeric(a);
  const nb = numeric(b);
  if (na === undefined || nb === undefined) throw unsupported("-", a, b);
  return na - nb;
}

/** `a * b`: numbers, or sequence repetition (bounded). */
export function mul(a: Value, b: Value): Value {
  const na = numeric(a);
  const nb = numeric(b);
  if (na !== undefined && nb !== undefined) return na * nb;
  if (nb !== undefined && (typeof a === "string" || Array.isArray(a))) {
    return repeat(a as string | readonly Value[], nb);
  }
  if (na !== undefined && (typeof b === "string" || Array.isArray(b))) {
    return repeat(b as string | readonly Value[], na);
  }
  throw unsupported("*", a, b);
}

/** `a / b`: true division. */
export function div(a: Value, b: Value): number {
  const na = numeric(a);
  const nb = numeric(b);
  if (na === undefined || nb === undefined) throw unsupported("/", a, b);
  if (nb === 0) throw new ValueError("ZeroDivisionError", "division by zero");
  return na / nb;
}

/** Python's modulo: the result has the sign of the divisor. */
export function pyMod(a: number, b: number): number {
  if (b === 0) throw new ValueError("ZeroDivisionError", "modulo by zero");
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
}

/** `a % b`: modulo, or printf-style formatting when `a` is a string. */
export function mod(a: Value, b: Value): Value {
  if (typeof a === "string") return formatPercent(a, b);
  const na = numeric(a);
  const nb = numeric(b);
  if (na === undefined || nb === undefined) throw unsupported("%", a, b);
  return pyMod(na, nb);
}

const SPEC = /%(?:\(([^)]*)\))?([-+ 0#]*)(\d+)?(?:\.(\d+))?([diouxXeEfFgGcrsa%])/g;

/**
 * x.toFixed(digits), except that an exact tie rounds to even as Python does (`'%.1f' % 2.25` is
 * 2.2, `round(0.125, 2)` is 0.12); toFixed rounds ties up. Non-ties round the exact binary value
 * in both languages (2.675 is 2.67499…, so 2.67).
 */
export function fixedEven(x: number, digits: number): string {
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return x.toFixed(digits);
  // toFixed(100) spells the exact binary value, so a tie is a 5 followed only by zeros.
  const exact = Math.abs(x).toFixed(100);
  const cut = exact.indexOf(".") + 1 + digits;
  if (!/^50*$/.test(exact.slice(cut))) return x.toFixed(digits);
  const down = exact.slice(0, digits === 0 ? cut - 1 : cut);
  const lastDigit = Number(down.at(-1));
  const mag = lastDigit % 2 === 0 ? Number(down) : Number(down) + 10 ** -digits;
  return (x < 0 ? -mag : mag).toFixed(digits);
}

function formatOne(
  conv: string,
  flags: string,
  width: number,
  prec: number | undefined,
  v: Value,
): string {
  let s: string;
  if (conv === "s") s = str(v);
  else if (conv === "r" || conv === "a") s = repr(v);
  else if (conv === "c") s = typeof v === "string" ? v : String.fromCodePoint(needNumber(v, "%c"));
  else {
    const n = needNumber(v, `%${conv}`);
    if ("diu".includes(conv)) s = Math.trunc(n).toString();
    else if (conv === "o") s = Math.trunc(n).toString(8);
    else if (conv === "x" || conv === "X") {
      s = Math.trunc(n).toString(16);
      if (conv === "X") s = s.toUpperCase();
    } else if (conv === "f" || conv === "F") s = fixedEven(n, prec ?? 6);
    else if (conv === "e" || conv === "E") {
      s = n.toExponential(prec ?? 6).replace(/e([-+])(\d)$/, "e$10$2");
      if (conv === "E") s = s.toUpperCase();
    } else {
      s = n.toPrecision(Math.max(1, prec ?? 6));
      if (s.includes("e")) s = s.replace(/\.?0+e/, "e").replace(/e([-+])(\d)$/, "e$10$2");
      else if (s.includes(".")) s = s.replace(/\.?0+$/, "");
      if (conv === "G") s = s.toUpperCase();
    }
    if (flags.includes("+") && n >= 0) s = `+${s}`;
    else if (flags.includes(" ") && n >= 0) s = ` ${s}`;
  }
  if (conv === "s" || conv === "r") s = prec === undefined ? s : s.slice(0, prec);
  if (s.length >= width) return s;
  if (flags.includes("-")) return s.padEnd(width);
  if (flags.includes("0") && !"srac".includes(conv)) {
    const sign = /^[-+ ]/.test(s) ? s.slice(0, 1) : "";
    return sign + s.slice(sign.length).padStart(width - sign.length, "0");
  }
  return s.padStart(width);
}

/** `"fmt" % args`: the printf subset of Python (`%s %r %d %i %f %e %g %x %o %c %%`). */
export function formatPercent(fmt: string, arg: Value): string {
  const args = Array.isArray(arg) && TUPLES.has(arg) ? (arg as readonly Value[]) : [arg];
  let used = 0;
  let out = "";
  let last = 0;
  for (const m of fmt.matchAll(SPEC)) {
    out += fmt.slice(last, m.index);
    last = m.index + m[0].length;
    const conv = m[5] as string;
    if (m[1] !== undefined) throw new ValueError("TypeError", "format requires a mapping");
    if (conv === "%") {
      out += "%";
      continue;
    }
    const width = Math.min(Number(m[3] ?? 0), MAX_STRING + 1);
    const prec = m[4] === undefined ? undefined : Math.min(Number(m[4]), 100);
    if (used >= args.length) {
      throw new ValueError("TypeError", "not enough arguments for format string");
    }
    out += formatOne(conv, m[2] ?? "", width, prec, args[used++] as Value);
    if (out.length > MAX_STRING) {
      throw new ValueError("OverflowError", `string longer than ${MAX_STRING} characters`);
    }
  }
  if (fmt.slice(last).includes("%")) {
    throw new ValueError("ValueError", "incomplete format");
  }
  if (used < args.length) {
    throw new ValueError("TypeError", "not all arguments converted during string formatting");
  }
  return out + fmt.slice(last);
}
