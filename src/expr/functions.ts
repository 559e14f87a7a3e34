/**
 * Built-in functions of the expression language: the math, statistics, logic and buffer helpers
 * of iocmng 2.7.9 (docs/expressions.md, "Functions"), with Python's results (banker's rounding, population
 * standard deviation, `min`/`max` over one iterable or several arguments). One deliberate
 * difference: `last(v)` returns the last element (a number for a buffer), not a one-element list;
 * `last(v, n)` with n > 1 returns a list.
 */
import {
  add,
  compare,
  fixedEven,
  MAX_LIST,
  needNumber,
  truthy,
  typeName,
  type Value,
  ValueError,
} from "./values.ts";

/** A function callable from expressions. */
export interface ExprFunction {
  /** Positional-or-keyword parameter names, in order. */
  params: readonly string[];
  /** How many of `params` are required. */
  required: number;
  /** Accepts any number of extra positional arguments. */
  variadic?: boolean;
  /** Keyword-only parameter names. */
  keywordOnly?: readonly string[];
  /** Called with the positional arguments (params filled from keywords) and keyword-only ones. */
  call(args: Value[], keywords: Readonly<Record<string, Value>>): Value;
}

/** A scalar becomes a one-element list; a list is itself; a string is refused. */
function asList(v: Value | undefined, fn: string): readonly Value[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v as readonly Value[];
  if (typeof v === "string") throw new ValueError("TypeError", `${fn}() needs numbers, not 'str'`);
  return [v];
}

function numbers(v: Value | undefined, fn: string): number[] {
  return asList(v, fn).map((x) => needNumber(x, fn));
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? 0 : sum(xs) / xs.length;
}

function variance(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) * (x - m);
  return s / xs.length;
}

/** Finite result or Python's OverflowError. */
function finite(x: number, fn: string): number {
  if (!Number.isFinite(x)) throw new ValueError("OverflowError", `${fn}(): math range error`);
  return x;
}

function domain(ok: boolean): void {
  if (!ok) throw new ValueError("ValueError", "math domain error");
}

function toFixedEven(x: number, digits: number): number {
  return Number(fixedEven(x, digits));
}

/** Python's round(): half to even; no ndigits → an integer. */
function pyRound(x: number, ndigits: number | undefined): number {
  if (!Number.isFinite(x)) {
    if (ndigits === undefined)
      throw new ValueError("OverflowError", "cannot round a non-finite number");
    return x;
  }
  const nd = ndigits ?? 0;
  if (nd >= 0) return Math.abs(x) >= 1e21 ? x : toFixedEven(x, Math.min(nd, 100));
  const scale = 10 ** Math.min(-nd, 308);
  return toFixedEven(x / scale, 0) * scale;
}

/** Integer modular exponentiation (3-argument pow), exact through BigInt. */
function powMod(b: number, e: number, m: number): number {
  if (![b, e, m].every(Number.isInteger)) {
    throw new ValueError(
      "TypeError",
      "pow() 3rd argument not allowed unless all arguments are integers",
    );
  }
  if (m === 0) throw new ValueError("ValueError", "pow() 3rd argument cannot be 0");
  if (e < 0)
    throw new ValueError("ValueError", "pow() negative exponent with a modulus is not supported");
  const mod = BigInt(m);
  let base = ((BigInt(b) % mod) + mod) % mod;
  let exp = BigInt(e);
  let r = 1n;
  while (exp > 0n) {
    if (exp & 1n) r = (r * base) % mod;
    base = (base * base) % mod;
    exp >>= 1n;
  }
  const out = Number(r);
  return out !== 0 && out < 0 !== m < 0 ? out + m : out;
}

function pyPow(b: number, e: number): number {
  if (b === 0 && e < 0)
    throw new ValueError("ZeroDivisionError", "0.0 cannot be raised to a negative power");
  if (b < 0 && !Number.isInteger(e)) {
    throw new ValueError(
      "ValueError",
      "pow() of a negative number to a fractional power is complex",
    );
  }
  return finite(b ** e, "pow");
}

/** min/max: one iterable or several arguments; `default=` for an empty iterable. */
function extreme(name: "min" | "max", args: Value[], kw: Readonly<Record<string, Value>>): Value {
  const items = args.length === 1 ? asSeq(args[0] as Value, name) : args;
  if (items.length === 0) {
    if ("default" in kw) return kw["default"] as Value;
    throw new ValueError("ValueError", `${name}() arg is an empty sequence`);
  }
  let best = items[0] as Value;
  for (let i = 1; i < items.length; i++) {
    const c = compare(items[i] as Value, best, name === "min" ? "<" : ">");
    if (name === "min" ? c < 0 : c > 0) best = items[i] as Value;
  }
  return best;
}

function asSeq(v: Value, fn: string): readonly Value[] {
  if (Array.isArray(v)) return v as readonly Value[];
  if (typeof v === "string") return [...v];
  throw new ValueError("TypeError", `'${typeName(v)}' object is not iterable (${fn})`);
}

function diff(v: Value | undefined): number[] {
  const xs = numbers(v, "diff");
  const out: number[] = [];
  for (let i = 1; i < xs.length; i++) out.push((xs[i] as number) - (xs[i - 1] as number));
  return out;
}

const one = (params: string[], required: number, call: ExprFunction["call"]): ExprFunction => ({
  params,
  required,
  call,
});
const varargs = (call: ExprFunction["call"], keywordOnly: string[] = []): ExprFunction => ({
  params: [],
  required: 0,
  variadic: true,
  keywordOnly,
  call,
});

/** The built-in functions, by name. */
export const BUILTINS: ReadonlyMap<string, ExprFunction> = new Map<string, ExprFunction>([
  ["abs", one(["x"], 1, ([x]) => Math.abs(needNumber(x, "abs")))],
  [
    "round",
    one(["number", "ndigits"], 1, ([x, n]) =>
      pyRound(
        needNumber(x, "round"),
        n === undefined || n === null ? undefined : Math.trunc(needNumber(n, "round")),
      ),
    ),
  ],
  [
    "pow",
    one(["base", "exp", "mod"], 2, ([b, e, m]) =>
      m === undefined || m === null
        ? pyPow(needNumber(b, "pow"), needNumber(e, "pow"))
        : powMod(needNumber(b, "pow"), needNumber(e, "pow"), needNumber(m, "pow")),
    ),
  ],
  [
    "sqrt",
    one(["x"], 1, ([x]) => {
      const n = needNumber(x, "sqrt");
      domain(n >= 0);
      return Math.sqrt(n);
    }),
  ],
  [
    "log",
    one(["x", "base"], 1, ([x, b]) => {
      const n = needNumber(x, "log");
      domain(n > 0);
      if (b === undefined) return Math.log(n);
      const base = needNumber(b, "log");
      domain(base > 0);
      if (base === 1) throw new ValueError("ZeroDivisionError", "float division by zero");
      return Math.log(n) / Math.log(base);
    }),
  ],
  ["exp", one(["x"], 1, ([x]) => finite(Math.exp(needNumber(x, "exp")), "exp"))],
  ["floor", one(["x"], 1, ([x]) => finite(Math.floor(needNumber(x, "floor")), "floor"))],
  ["ceil", one(["x"], 1, ([x]) => finite(Math.ceil(needNumber(x, "ceil")), "ceil"))],
  [
    "clamp",
    one(["value", "low", "high"], 3, ([v, lo, hi]) =>
      extreme("max", [lo as Value, extreme("min", [hi as Value, v as Value], {})], {}),
    ),
  ],
  ["min", varargs((a, kw) => extreme("min", a, kw), ["default"])],
  ["max", varargs((a, kw) => extreme("max", a, kw), ["default"])],
  ["mean", one(["values"], 1, ([v]) => mean(numbers(v, "mean")))],
  ["std", one(["values"], 1, ([v]) => Math.sqrt(variance(numbers(v, "std"))))],
  ["variance", one(["values"], 1, ([v]) => variance(numbers(v, "variance")))],
  [
    "median",
    one(["values"], 1, ([v]) => {
      const xs = numbers(v, "median").sort((a, b) => a - b);
      if (xs.length === 0) return 0;
      const mid = xs.length >> 1;
      return xs.length % 2 === 0
        ? ((xs[mid - 1] as number) + (xs[mid] as number)) / 2
        : (xs[mid] as number);
    }),
  ],
  [
    "rms",
    one(["values"], 1, ([v]) => {
      const xs = numbers(v, "rms");
      return xs.length === 0 ? 0 : Math.sqrt(sum(xs.map((x) => x * x)) / xs.length);
    }),
  ],
  ["any_of", varargs((a) => a.some(truthy))],
  ["all_of", varargs((a) => a.every(truthy))],
  ["count_true", varargs((a) => a.filter(truthy).length)],
  [
    "length",
    one(["values"], 1, ([v]) => (typeof v === "string" ? v.length : asList(v, "length").length)),
  ],
  [
    "sum_of",
    one(["values"], 1, ([v]) => {
      let s: Value = 0;
      for (const x of asList(v, "sum_of")) s = add(s, x);
      return s;
    }),
  ],
  ["diff", one(["values"], 1, ([v]) => diff(v))],
  ["derivative", one(["values"], 1, ([v]) => diff(v))],
  [
    "last",
    one(["values", "n"], 1, ([v, n]) => {
      const xs = asList(v, "last");
      if (n === undefined) {
        if (xs.length === 0) throw new ValueError("ValueError", "last() of an empty sequence");
        return xs[xs.length - 1] as Value;
      }
      const k = Math.trunc(needNumber(n, "last"));
      return k <= 0 ? [...xs] : xs.slice(-k);
    }),
  ],
  [
    "moving_avg",
    one(["values", "window"], 1, ([v, w]) => {
      let xs = numbers(v, "moving_avg");
      if (w !== undefined && w !== null) {
        const k = Math.trunc(needNumber(w, "moving_avg"));
        xs = k <= 0 ? xs : xs.slice(-k);
      }
      return mean(xs);
    }),
  ],
]);

/** Turns positional and keyword arguments into the `call` arguments, or a TypeError. */
export function bindArgs(
  name: string,
  fn: ExprFunction,
  args: Value[],
  keywords: readonly { name: string; value: Value }[],
): [Value[], Record<string, Value>] {
  if (!fn.variadic && args.length > fn.params.length) {
    throw new ValueError(
      "TypeError",
      `${name}() takes at most ${fn.params.length} arguments (${args.length} given)`,
    );
  }
  if (args.length > MAX_LIST)
    throw new ValueError("OverflowError", `${name}(): too many arguments`);
  const bound = [...args];
  const kwOnly: Record<string, Value> = {};
  for (const { name: k, value } of keywords) {
    const idx = fn.params.indexOf(k);
    if (idx >= 0) {
      if (idx < args.length)
        throw new ValueError("TypeError", `${name}() got multiple values for argument '${k}'`);
      bound[idx] = value;
    } else if (fn.keywordOnly?.includes(k)) kwOnly[k] = value;
    else throw new ValueError("TypeError", `${name}() got an unexpected keyword argument '${k}'`);
  }
  for (let i = 0; i < fn.required; i++) {
    if (bound[i] === undefined) {
      throw new ValueError("TypeError", `${name}() missing required argument '${fn.params[i]}'`);
    }
  }
  if (fn.variadic && bound.length === 0 && (name === "min" || name === "max")) {
    throw new ValueError("TypeError", `${name} expected at least 1 argument, got 0`);
  }
  return [bound, kwOnly];
}
