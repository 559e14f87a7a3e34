/**
 * The EPICS calc expression language as access security files use it (`CALC("A=1")` in a RULE):
 * inputs A..L, numbers, arithmetic, comparison, logical and bitwise operators, `?:`, the usual
 * functions. Written from the behaviour of EPICS Base's postfix/calcPerform (precedence, case
 * insensitive longest-match names, `=`/`#` as equality, C truth), not from its code.
 *
 * Bounded: an expression is at most MAX_CALC_LENGTH characters and nests at most MAX_CALC_DEPTH
 * deep, so neither compiling nor evaluating can exhaust the stack; evaluation has no loops, so its
 * cost is linear in the expression. Assignments (`:=`) and multiple expressions (`;`) are refused,
 * as asLib refuses stores.
 */

/** Longest CALC expression accepted (characters). */
export const MAX_CALC_LENGTH = 4096;
/** Deepest nesting of parentheses, unary operators and conditionals. */
export const MAX_CALC_DEPTH = 200;
/** Number of inputs (A..L). */
export const CALC_INPUTS = 12;

/** A malformed expression; `offset` is the 0-based character index in the expression. */
export class CalcError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = "CalcError";
  }
}

/** Evaluates with inputs A..L in `args[0..11]`; `val` is what `VAL` reads (the previous result). */
type Evaluator = (args: Float64Array, val: number) => number;

/** A compiled expression. */
export interface CalcProgram {
  readonly source: string;
  /** Bit i set when input i (A=0 … L=11) is read. */
  readonly inputsUsed: number;
  evaluate(args: Float64Array, val?: number): number;
}

// ToInt32 wraps modulo 2^32 like the C casts calcPerform uses for bitwise operators.
const i32 = (x: number) => x | 0;
const truth = (x: number) => x !== 0; // C truth: NaN is true
const b = (x: boolean) => (x ? 1 : 0);

const UNARY_FNS: Record<string, (x: number) => number> = {
  ABS: Math.abs,
  ACOS: Math.acos,
  ASIN: Math.asin,
  ATAN: Math.atan,
  CEIL: Math.ceil,
  COS: Math.cos,
  COSH: Math.cosh,
  EXP: Math.exp,
  FLOOR: Math.floor,
  ISINF: (x) => b(x === Number.POSITIVE_INFINITY || x === Number.NEGATIVE_INFINITY),
  LN: Math.log,
  LOG: Math.log10,
  LOGE: Math.log,
  NINT: (x) => i32(x >= 0 ? x + 0.5 : x - 0.5),
  NOT: (x) => ~i32(x),
  SIN: Math.sin,
  SINH: Math.sinh,
  SQR: Math.sqrt,
  SQRT: Math.sqrt,
  TAN: Math.tan,
  TANH: Math.tanh,
};

const BINARY_FNS: Record<string, (x: number, y: number) => number> = {
  // calcPerform swaps ATAN2's arguments: ATAN2(a, b) is atan2(b, a).
  ATAN2: (x, y) => Math.atan2(y, x),
  FMOD: (x, y) => x % y,
};

const VARARG_FNS: Record<string, (xs: number[]) => number> = {
  MAX: (xs) => xs.reduce((m, x) => (m < x || Number.isNaN(x) ? x : m)),
  MIN: (xs) => xs.reduce((m, x) => (m > x || Number.isNaN(x) ? x : m)),
  FINITE: (xs) => b(xs.every(Number.isFinite)),
  ISNAN: (xs) => b(xs.some(Number.isNaN)),
};

const CONSTANTS: Record<string, number> = {
  PI: Math.PI,
  D2R: Math.PI / 180,
  R2D: 180 / Math.PI,
  INF: Number.POSITIVE_INFINITY,
  NAN: Number.NaN,
};

const BINARY_OPS: Record<string, { prec: number; fn: (x: number, y: number) => number }> = {
  "|": { prec: 1, fn: (x, y) => i32(x) | i32(y) },
  OR: { prec: 1, fn: (x, y) => i32(x) | i32(y) },
  XOR: { prec: 1, fn: (x, y) => i32(x) ^ i32(y) },
  "||": { prec: 1, fn: (x, y) => b(truth(x) || truth(y)) },
  "&": { prec: 2, fn: (x, y) => i32(x) & i32(y) },
  AND: { prec: 2, fn: (x, y) => i32(x) & i32(y) },
  "&&": { prec: 2, fn: (x, y) => b(truth(x) && truth(y)) },
  "<<": { prec: 2, fn: (x, y) => i32(x) << (i32(y) & 31) },
  ">>": { prec: 2, fn: (x, y) => i32(x) >> (i32(y) & 31) },
  ">>>": { prec: 2, fn: (x, y) => i32(x) >>> (i32(y) & 31) },
  "=": { prec: 3, fn: (x, y) => b(x === y) },
  "==": { prec: 3, fn: (x, y) => b(x === y) },
  "!=": { prec: 3, fn: (x, y) => b(x !== y) },
  "#": { prec: 3, fn: (x, y) => b(x !== y) },
  "<": { prec: 3, fn: (x, y) => b(x < y) },
  "<=": { prec: 3, fn: (x, y) => b(x <= y) },
  ">": { prec: 3, fn: (x, y) => b(x > y) },
  ">=": { prec: 3, fn: (x, y) => b(x >= y) },
  "+": { prec: 4, fn: (x, y) => x + y },
  "-": { prec: 4, fn: (x, y) => x - y },
  "*": { prec: 5, fn: (x, y) => x * y },
  "/": { prec: 5, fn: (x, y) => x / y },
  // Integer modulo; a zero divisor gives NaN, as calcPerform does.
  "%": { prec: 5, fn: (x, y) => (i32(y) === 0 ? Number.NaN : i32(x) % i32(y)) },
  "^": { prec: 6, fn: (x, y) => x ** y },
  "**": { prec: 6, fn: (x, y) => x ** y },
};

const PREFIX_OPS: Record<string, (x: number) => number> = {
  "-": (x) => -x,
  "!": (x) => b(!truth(x)),
  "~": (x) => ~i32(x),
};

function byLengthDesc(names: string[]): string[] {
  return [...names].sort((x, y) => y.length - x.length);
}

// Names an operand position may start with, longest first (EPICS matches the longest name).
const OPERAND_NAMES = byLengthDesc([
  ...Object.keys(UNARY_FNS),
  ...Object.keys(BINARY_FNS),
  ...Object.keys(VARARG_FNS),
  ...Object.keys(CONSTANTS),
  "RNDM",
  "VAL",
  ..."ABCDEFGHIJKL",
]);
const OPERATOR_NAMES = byLengthDesc([...Object.keys(BINARY_OPS), "?", ":", ":=", ";", ")", ","]);
const NUMBER_RE = /^(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;

class CalcParser {
  private pos = 0;
  private depth = 0;
  inputsUsed = 0;

  constructor(private readonly src: string) {}

  parse(): Evaluator {
    const e = this.ternary();
    const op = this.peekOperator();
    if (op !== undefined) {
      if (op === ";") this.fail("multiple expressions (;) are not allowed in an access rule");
      if (op === ":=") this.fail("assignments (:=) are not allowed in an access rule");
      this.fail(`unexpected '${op}'`);
    }
    this.skipSpace();
    if (this.pos < this.src.length) this.fail(`unexpected '${this.src[this.pos]}'`);
    return e;
  }

  private fail(message: string, at = this.pos): never {
    throw new CalcError(message, at);
  }

  private skipSpace(): void {
    while (this.pos < this.src.length && /\s/.test(this.src[this.pos] ?? "")) this.pos++;
  }

  private match(names: string[]): string | undefined {
    this.skipSpace();
    const rest = this.src.slice(this.pos, this.pos + 8).toUpperCase();
    return names.find((n) => rest.startsWith(n));
  }

  private peekOperator(): string | undefined {
    return this.match(OPERATOR_NAMES);
  }

  private expect(op: string): void {
    if (this.peekOperator() !== op) {
      this.skipSpace();
      const got = this.pos < this.src.length ? `'${this.src[this.pos]}'` : "end of expression";
      this.fail(`expected '${op}', got ${got}`);
    }
    this.pos += op.length;
  }

  private enter(): void {
    if (++this.depth > MAX_CALC_DEPTH) this.fail(`nested deeper than ${MAX_CALC_DEPTH}`);
  }

  private ternary(): Evaluator {
    this.enter();
    const cond = this.binary(1);
    let out = cond;
    if (this.peekOperator() === "?") {
      this.pos++;
      const then = this.ternary();
      this.expect(":");
      const other = this.ternary();
      out = (a, v) => (truth(cond(a, v)) ? then(a, v) : other(a, v));
    }
    this.depth--;
    return out;
  }

  private binary(minPrec: number): Evaluator {
    let left = this.unary();
    for (;;) {
      const op = this.peekOperator();
      const def = op === undefined ? undefined : BINARY_OPS[op];
      if (op === undefined || def === undefined || def.prec < minPrec) return left;
      this.pos += op.length;
      // Every level is left-associative, `^` included (2^3^2 is 64 in EPICS).
      const right = this.binary(def.prec + 1);
      const l = left;
      const fn = def.fn;
      left = (a, v) => fn(l(a, v), right(a, v));
    }
  }

  private unary(): Evaluator {
    this.enter();
    const out = this.operand();
    this.depth--;
    return out;
  }

  private operand(): Evaluator {
    this.skipSpace();
    const start = this.pos;
    const c = this.src[this.pos];
    if (c === undefined) this.fail("expression incomplete: operand expected");
    const prefix = PREFIX_OPS[c];
    if (prefix) {
      this.pos++;
      const x = this.unary();
      return (a, v) => prefix(x(a, v));
    }
    if (c === "(") {
      this.pos++;
      const e = this.ternary();
      this.expect(")");
      return e;
    }
    const num = NUMBER_RE.exec(this.src.slice(this.pos, this.pos + 64));
    if (num) {
      this.pos += num[0].length;
      const text = num[0];
      // Hex literals are 32-bit unsigned read back as signed, like LITERAL_INT.
      const value = /^0x/i.test(text) ? i32(Number.parseInt(text.slice(2), 16)) : Number(text);
      if (Number.isNaN(value)) this.fail(`bad number '${text}'`, start);
      return () => value;
    }
    const name = this.match(OPERAND_NAMES);
    if (name === undefined) this.fail(`unexpected '${c}': operand expected`);
    this.pos += name.length;
    return this.named(name, start);
  }

  private named(name: string, start: number): Evaluator {
    if (name.length === 1) {
      const i = name.charCodeAt(0) - 65;
      this.inputsUsed |= 1 << i;
      return (a) => a[i] ?? 0;
    }
    const k = CONSTANTS[name];
    if (k !== undefined) return () => k;
    if (name === "VAL") return (_a, v) => v;
    if (name === "RNDM") return () => Math.random();
    const f1 = UNARY_FNS[name];
    if (f1) {
      const x = this.unary();
      return (a, v) => f1(x(a, v));
    }
    const args = this.argList(name, start);
    const f2 = BINARY_FNS[name];
    if (f2) {
      if (args.length !== 2) this.fail(`${name} takes 2 arguments, got ${args.length}`, start);
      const [x, y] = args as [Evaluator, Evaluator];
      return (a, v) => f2(x(a, v), y(a, v));
    }
    const fn = VARARG_FNS[name] as (xs: number[]) => number;
    return (a, v) => fn(args.map((x) => x(a, v)));
  }

  private argList(name: string, start: number): Evaluator[] {
    this.skipSpace();
    // Without parentheses a function takes the one operand that follows, as in EPICS (`MAX A`).
    if (this.src[this.pos] !== "(") return [this.unary()];
    this.pos++;
    this.enter();
    const args = [this.ternary()];
    while (this.peekOperator() === ",") {
      this.pos++;
      if (args.length >= CALC_INPUTS * 2) this.fail(`too many arguments to ${name}`, start);
      args.push(this.ternary());
    }
    this.expect(")");
    this.depth--;
    return args;
  }
}

/** Compiles an expression or throws CalcError with the offset of the problem. */
export function compileCalc(source: string): CalcProgram {
  if (source.length > MAX_CALC_LENGTH) {
    throw new CalcError(`expression longer than ${MAX_CALC_LENGTH} characters`, MAX_CALC_LENGTH);
  }
  if (source.trim() === "") throw new CalcError("empty expression", 0);
  const parser = new CalcParser(source);
  const run = parser.parse();
  return {
    source,
    inputsUsed: parser.inputsUsed,
    evaluate: (args, val = 0) => run(args, val),
  };
}

/** asLib's truth test for a rule's CALC: the result must be within (0.99, 1.01). */
export function calcIsTrue(result: number): boolean {
  return result > 0.99 && result < 1.01;
}
