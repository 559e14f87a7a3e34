/**
 * The expression language of declarative plugins (rule conditions, transforms): a safe subset of
 * Python expressions, compiled once into a tree of closures and evaluated many times.
 *
 * Safety comes from construction, not from filtering: the evaluator is a closed interpreter over
 * our own AST. It never calls `eval`/`Function`, and the only things an expression can reach are
 * the variables handed to `evaluate` and the functions of the registry given at compile time, so
 * there is no path to globals, prototypes or attributes. Work is bounded: the source, nesting and
 * node count are limited at compile time, strings and lists at evaluation, and there are no loops.
 */
import { ExprError } from "./errors.ts";
import { BUILTINS, bindArgs, type ExprFunction } from "./functions.ts";
import { type Node, parse } from "./parser.ts";
import {
  add,
  compare,
  div,
  equals,
  MAX_LIST,
  mod,
  mul,
  numeric,
  sub,
  truthy,
  tuple,
  typeName,
  type Value,
  ValueError,
} from "./values.ts";

export { ExprError, type ExprErrorKind } from "./errors.ts";
export { BUILTINS, type ExprFunction } from "./functions.ts";
export { MAX_DEPTH, MAX_NODES, MAX_SOURCE } from "./parser.ts";
export { formatNumber, MAX_LIST, MAX_STRING, repr, str, truthy, type Value } from "./values.ts";

/** Where variables come from; a Map works. */
export interface Scope {
  get(name: string): Value | undefined;
}

/** A compiled expression. */
export interface CompiledExpr {
  readonly source: string;
  /** Every variable name the expression reads (not function names). */
  readonly names: ReadonlySet<string>;
  /** Evaluates against `scope`; throws ExprError (kind "runtime") with the position. */
  evaluate(scope: Scope): Value;
}

export interface CompileOptions {
  /** Functions callable from the expression; default: the built-ins. */
  functions?: ReadonlyMap<string, ExprFunction>;
  /** Context for error messages, e.g. `Rule TRIP condition`. */
  where?: string;
}

type Eval = (scope: Scope) => Value;

/** Runs `f`, turning a ValueError into an ExprError at `pos`. */
function at<T>(pos: number, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ValueError) throw new ExprError("runtime", `${e.pyType}: ${e.message}`, pos);
    if (e instanceof RangeError) throw new ExprError("runtime", `OverflowError: ${e.message}`, pos);
    throw e;
  }
}

class Compiler {
  readonly names = new Set<string>();
  constructor(private readonly functions: ReadonlyMap<string, ExprFunction>) {}

  compile(n: Node): Eval {
    switch (n.t) {
      case "lit": {
        const v = n.v;
        return () => v;
      }
      case "name":
        return this.name(n.id, n.pos);
      case "seq":
        return this.seq(
          n.items.map((i) => this.compile(i)),
          n.tuple,
          n.pos,
        );
      case "unary":
        return this.unary(n.op, this.compile(n.arg), n.pos);
      case "bin":
        return this.binary(n.op, this.compile(n.left), this.compile(n.right), n.pos);
      case "cmp":
        return this.comparison(
          n.ops,
          n.operands.map((o) => this.compile(o)),
          n.operands.map((o) => o.pos),
        );
      case "bool":
        return this.boolOp(
          n.op,
          n.values.map((v) => this.compile(v)),
        );
      case "if": {
        const test = this.compile(n.test);
        const body = this.compile(n.body);
        const orelse = this.compile(n.orelse);
        return (s) => (truthy(test(s)) ? body(s) : orelse(s));
      }
      case "call":
        return this.call(n);
    }
  }

  private name(id: string, pos: number): Eval {
    this.names.add(id);
    return (s) => {
      const v = s.get(id);
      if (v === undefined)
        throw new ExprError("runtime", `NameError: name '${id}' is not defined`, pos);
      return v;
    };
  }

  private seq(items: Eval[], isTuple: boolean, pos: number): Eval {
    if (items.length > MAX_LIST) throw new ExprError("limit", "list literal too long", pos);
    return (s) => {
      const out = items.map((f) => f(s));
      return isTuple ? tuple(out) : out;
    };
  }

  private unary(op: "-" | "+" | "not", arg: Eval, pos: number): Eval {
    if (op === "not") return (s) => !truthy(arg(s));
    return (s) => {
      const v = arg(s);
      const n = numeric(v);
      if (n === undefined) {
        throw new ExprError(
          "runtime",
          `TypeError: bad operand type for unary ${op}: '${typeName(v)}'`,
          pos,
        );
      }
      return op === "-" ? -n : n;
    };
  }

  private binary(op: "+" | "-" | "*" | "/" | "%", l: Eval, r: Eval, pos: number): Eval {
    const f = { "+": add, "-": sub, "*": mul, "/": div, "%": mod }[op];
    return (s) => {
      const a = l(s);
      const b = r(s);
      // Fast path for the common case: two numbers, no exception possible except / and %.
      if (typeof a === "number" && typeof b === "number") {
        if (op === "+") return a + b;
        if (op === "-") return a - b;
        if (op === "*") return a * b;
      }
      return at(pos, () => f(a, b));
    };
  }

  private comparison(ops: string[], operands: Eval[], positions: number[]): Eval {
    const test = (op: string, a: Value, b: Value, pos: number): boolean => {
      if (op === "==") return equals(a, b);
      if (op === "!=") return !equals(a, b);
      if (typeof a === "number" && typeof b === "number") {
        return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
      }
      const c = at(pos, () => compare(a, b, op));
      if (op === "<") return c < 0;
      if (op === "<=") return c <= 0;
      if (op === ">") return c > 0;
      return c >= 0;
    };
    return (s) => {
      let left = (operands[0] as Eval)(s);
      for (let i = 0; i < ops.length; i++) {
        const right = (operands[i + 1] as Eval)(s);
        if (!test(ops[i] as string, left, right, positions[i + 1] as number)) return false;
        left = right;
      }
      return true;
    };
  }

  private boolOp(op: "and" | "or", values: Eval[]): Eval {
    const stopOn = op === "or";
    return (s) => {
      let v: Value = null;
      for (const f of values) {
        v = f(s);
        if (truthy(v) === stopOn) return v;
      }
      return v;
    };
  }

  private call(n: Extract<Node, { t: "call" }>): Eval {
    const fn = this.functions.get(n.fn);
    if (fn === undefined) {
      throw new ExprError("unsafe", `function '${n.fn}' is not registered`, n.pos);
    }
    const args = n.args.map((a) => this.compile(a));
    const kws = n.kwargs.map((k) => ({ name: k.name, value: this.compile(k.value) }));
    const name = n.fn;
    return (s) => {
      // A variable with a function's name shadows it, as in upstream's scope.
      const shadow = s.get(name);
      if (shadow !== undefined) {
        throw new ExprError(
          "runtime",
          `TypeError: '${typeName(shadow)}' object is not callable`,
          n.pos,
        );
      }
      const values = args.map((a) => a(s));
      const kwValues = kws.map((k) => ({ name: k.name, value: k.value(s) }));
      return at(n.pos, () => {
        const [bound, kwOnly] = bindArgs(name, fn, values, kwValues);
        let out: unknown;
        try {
          out = fn.call(bound, kwOnly);
        } catch (e) {
          if (e instanceof ValueError || e instanceof ExprError) throw e;
          // A plugin-registered function failed: report it like any evaluation error.
          throw new ValueError(
            "ValueError",
            `${name}() failed: ${(e as Error)?.message ?? String(e)}`,
          );
        }
        return checkResult(out, name);
      });
    };
  }
}

/** A registered function must hand back a Value; plugin-registered ones are not trusted. */
function checkResult(v: unknown, name: string): Value {
  if (v === null || typeof v === "number" || typeof v === "string" || typeof v === "boolean")
    return v;
  if (Array.isArray(v) && v.length <= MAX_LIST) return v as Value[];
  throw new ValueError("TypeError", `${name}() returned an unsupported value`);
}

/** Compiles `source`; throws ExprError (syntax, unsafe, limit) naming `where` and the column. */
export function compileExpr(source: string, opts: CompileOptions = {}): CompiledExpr {
  const where = opts.where ?? "";
  try {
    const compiler = new Compiler(opts.functions ?? BUILTINS);
    const root = compiler.compile(parse(source));
    return {
      source,
      names: compiler.names,
      evaluate(scope: Scope): Value {
        try {
          return root(scope);
        } catch (e) {
          if (e instanceof ExprError) throw e.within(where, source);
          if (e instanceof RangeError) {
            throw new ExprError("runtime", `OverflowError: ${e.message}`, 0).within(where, source);
          }
          throw e;
        }
      },
    };
  } catch (e) {
    if (e instanceof ExprError) throw e.within(where, source);
    throw e;
  }
}

/** A registry: the built-ins plus `extra` (extra wins), as plugins register their own functions. */
export function functionsWith(
  extra: Readonly<Record<string, ExprFunction>>,
): ReadonlyMap<string, ExprFunction> {
  const m = new Map(BUILTINS);
  for (const [k, f] of Object.entries(extra)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`invalid function name '${k}'`);
    m.set(k, f);
  }
  return m;
}

/** One-shot convenience: compile and evaluate with a plain object of variables. */
export function evaluate(source: string, vars: Readonly<Record<string, Value>> = {}): Value {
  return compileExpr(source).evaluate(new Map(Object.entries(vars)));
}
