/**
 * The expression language: every operator of the grammar and every built-in function, with the
 * results Python gives for the same expression (the values 2.7.9 configs were written against).
 */
import { describe, expect, test } from "bun:test";
import {
  compileExpr,
  type ExprFunction,
  evaluate,
  functionsWith,
  type Value,
} from "../../src/expr/index.ts";

const ev = (src: string, vars: Record<string, Value> = {}) => evaluate(src, vars);
const err = (src: string, vars: Record<string, Value> = {}): string => {
  try {
    ev(src, vars);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`expected ${src} to fail`);
};

describe("literals and names", () => {
  test("numbers in Python's notations", () => {
    expect(ev("42")).toBe(42);
    expect(ev("1e-6")).toBe(1e-6);
    expect(ev("1.5E3")).toBe(1500);
    expect(ev(".5")).toBe(0.5);
    expect(ev("5.")).toBe(5);
    expect(ev("0x1F")).toBe(31);
    expect(ev("0o17")).toBe(15);
    expect(ev("0b101")).toBe(5);
    expect(ev("1_000")).toBe(1000);
  });
  test("strings, escapes, adjacent concatenation, raw strings", () => {
    expect(ev("'a'")).toBe("a");
    expect(ev('"b"')).toBe("b");
    expect(ev("'a\\nb'")).toBe("a\nb");
    expect(ev("'\\x41\\u00e9'")).toBe("Aé");
    expect(ev("'a' 'b'")).toBe("ab");
    expect(ev("r'\\n'")).toBe("\\n");
    expect(ev("'''x'y'''")).toBe("x'y");
  });
  test("True, False, None, lists and tuples", () => {
    expect(ev("True")).toBe(true);
    expect(ev("False")).toBe(false);
    expect(ev("None")).toBe(null);
    expect(ev("[1, 2, 3]")).toEqual([1, 2, 3]);
    expect(ev("(1, 'a')")).toEqual([1, "a"]);
    expect(ev("()")).toEqual([]);
    expect(ev("[]")).toEqual([]);
  });
  test("variables; an unknown name is Python's NameError", () => {
    expect(ev("x", { x: 3 })).toBe(3);
    expect(ev("sig_buf", { sig_buf: [1, 2] })).toEqual([1, 2]);
    expect(err("nope")).toContain("NameError: name 'nope' is not defined at column 1");
  });
});

describe("arithmetic", () => {
  test("+ - * / with precedence and parentheses", () => {
    expect(ev("1 + 2 * 3")).toBe(7);
    expect(ev("(1 + 2) * 3")).toBe(9);
    expect(ev("7 / 2")).toBe(3.5);
    expect(ev("10 - 4 - 3")).toBe(3);
    expect(ev("2 * 3 / 4")).toBe(1.5);
  });
  test("% has Python's sign rule and formats strings", () => {
    expect(ev("-7 % 3")).toBe(2);
    expect(ev("7 % -3")).toBe(-2);
    expect(ev("7.5 % 2")).toBe(1.5);
    expect(ev("'%s' % 1")).toBe("1");
    expect(ev("'%d items, %.2f V, %s' % (3, 2.345, None)")).toBe("3 items, 2.35 V, None");
    expect(ev("'%5.1f|%-4d|%03d' % (2.25, 7, 5)")).toBe("  2.2|7   |005");
    expect(ev("'%r %%' % 'x'")).toBe("'x' %");
    expect(ev("'%s' % [1, 2]")).toBe("[1, 2]");
    expect(ev("'%e' % 12345.678")).toBe("1.234568e+04");
    expect(ev("'%g' % 0.0001")).toBe("0.0001");
    expect(ev("'%x' % 255")).toBe("ff");
    expect(err("'%s %s' % 1")).toContain("not enough arguments");
    expect(err("'x' % 1")).toContain("not all arguments converted");
  });
  test("unary - + not; bools are numbers in arithmetic", () => {
    expect(ev("-x", { x: 2 })).toBe(-2);
    expect(ev("+x", { x: 2 })).toBe(2);
    expect(ev("- -3")).toBe(3);
    expect(ev("True + True")).toBe(2);
    expect(ev("-True")).toBe(-1);
    expect(err("-'a'")).toContain("bad operand type for unary -: 'str'");
  });
  test("string and list concatenation and repetition", () => {
    expect(ev("'a' + 'b'")).toBe("ab");
    expect(ev("'ab' * 2")).toBe("abab");
    expect(ev("[1] + [2]")).toEqual([1, 2]);
    expect(ev("[0] * 3")).toEqual([0, 0, 0]);
    expect(ev("3 * 'x'")).toBe("xxx");
  });
  test("type errors and division by zero are Python's", () => {
    expect(err("'a' + 1")).toContain(
      "TypeError: unsupported operand type(s) for +: 'str' and 'int'",
    );
    expect(err("1 / 0")).toContain("ZeroDivisionError: division by zero at column 3");
    expect(err("1 % 0")).toContain("ZeroDivisionError");
    expect(err("None - 1")).toContain("'NoneType' and 'int'");
  });
});

describe("comparisons and logic", () => {
  test("== != < <= > >= and chains", () => {
    expect(ev("1 == 1.0")).toBe(true);
    expect(ev("1 != 2")).toBe(true);
    expect(ev("1 < 2")).toBe(true);
    expect(ev("2 <= 2")).toBe(true);
    expect(ev("3 > 2")).toBe(true);
    expect(ev("2 >= 3")).toBe(false);
    expect(ev("0 < x < 5", { x: 3 })).toBe(true);
    expect(ev("0 < x < 5", { x: 7 })).toBe(false);
    expect(ev("'a' < 'b'")).toBe(true);
    expect(ev("[1, 2] < [1, 3]")).toBe(true);
    expect(ev("True == 1")).toBe(true);
    expect(ev("'1' == 1")).toBe(false);
    expect(ev("None == None")).toBe(true);
    expect(err("'a' < 1")).toContain("'<' not supported between instances of 'str' and 'int'");
  });
  test("and/or short-circuit and return an operand", () => {
    expect(ev("3 or 9")).toBe(3);
    expect(ev("0 or 9")).toBe(9);
    expect(ev("0 and 1 / 0")).toBe(0);
    expect(ev("1 or 1 / 0")).toBe(1);
    expect(ev("2 and 'x'")).toBe("x");
    expect(ev("not 0")).toBe(true);
    expect(ev("not 'a'")).toBe(false);
    expect(ev("not []")).toBe(true);
    expect(ev("chiller == 0 and rf == 1", { chiller: 0, rf: 1 })).toBe(true);
  });
  test("conditional expression, right-associative", () => {
    expect(ev("'a' if x > 1 else 'b'", { x: 2 })).toBe("a");
    expect(ev("'a' if x > 1 else 'b'", { x: 0 })).toBe("b");
    expect(ev("1 if 0 else 2 if 0 else 3")).toBe(3);
    expect(ev("1 if 1 else 1 / 0")).toBe(1);
  });
});

describe("built-in functions", () => {
  test("math", () => {
    expect(ev("abs(-2.5)")).toBe(2.5);
    expect(ev("round(2.5)")).toBe(2);
    expect(ev("round(3.5)")).toBe(4);
    expect(ev("round(-2.5)")).toBe(-2);
    expect(ev("round(2.675, 2)")).toBe(2.67);
    expect(ev("round(1.25, ndigits=1)")).toBe(1.2);
    expect(ev("pow(2, 10)")).toBe(1024);
    expect(ev("pow(2, 100, 7)")).toBe(2);
    expect(ev("sqrt(16)")).toBe(4);
    expect(ev("log(1)")).toBe(0);
    expect(ev("log(8, 2)")).toBe(3);
    expect(ev("exp(0)")).toBe(1);
    expect(ev("floor(-1.5)")).toBe(-2);
    expect(ev("ceil(1.2)")).toBe(2);
    expect(ev("clamp(5, 0, 3)")).toBe(3);
    expect(ev("clamp(-1, 0, 3)")).toBe(0);
    expect(ev("clamp(2, 0, 3)")).toBe(2);
    expect(err("sqrt(-1)")).toContain("ValueError: math domain error");
    expect(err("log(0)")).toContain("math domain error");
    expect(err("exp(1000)")).toContain("OverflowError");
    expect(err("pow(0, -1)")).toContain("ZeroDivisionError");
  });
  test("min and max: one iterable or several arguments, default=", () => {
    expect(ev("min(3, 1, 2)")).toBe(1);
    expect(ev("max([3, 1, 2])")).toBe(3);
    expect(ev("min(b)", { b: [4, -1] })).toBe(-1);
    expect(ev("max([], default=7)")).toBe(7);
    expect(ev("max('a', 'b')")).toBe("b");
    expect(err("min([])")).toContain("min() arg is an empty sequence");
    expect(err("max()")).toContain("max expected at least 1 argument");
  });
  test("statistics", () => {
    expect(ev("mean([1, 1, 3, 3])")).toBe(2);
    expect(ev("mean(5)")).toBe(5);
    expect(ev("mean([])")).toBe(0);
    expect(ev("std([1, 1, 3, 3])")).toBe(1);
    expect(ev("std([1])")).toBe(0);
    expect(ev("variance([1, 1, 3, 3])")).toBe(1);
    expect(ev("variance([2])")).toBe(0);
    expect(ev("median([3, 1, 2])")).toBe(2);
    expect(ev("median([4, 1, 2, 3])")).toBe(2.5);
    expect(ev("median([])")).toBe(0);
    expect(ev("rms([3, 4])")).toBeCloseTo(Math.sqrt(12.5), 12);
    expect(ev("rms([])")).toBe(0);
    expect(ev("std([1, 1, 1, 3])")).toBeCloseTo(0.8660254037844386, 12);
  });
  test("logic helpers", () => {
    expect(ev("any_of(0, '', 3)")).toBe(true);
    expect(ev("any_of(0, None)")).toBe(false);
    expect(ev("all_of(1, 'x', [0])")).toBe(true);
    expect(ev("all_of(1, 0)")).toBe(false);
    expect(ev("count_true(1, 0, True, 'a')")).toBe(3);
    expect(ev("any_of()")).toBe(false);
  });
  test("buffer helpers; last() returns the element, last(v, n) a list", () => {
    expect(ev("length([1, 2, 3])")).toBe(3);
    expect(ev("length(4)")).toBe(1);
    expect(ev("sum_of([1, 2, 3.5])")).toBe(6.5);
    expect(ev("sum_of([])")).toBe(0);
    expect(ev("diff([1, 4, 9])")).toEqual([3, 5]);
    expect(ev("derivative([1, 4, 9])")).toEqual([3, 5]);
    expect(ev("last(b)", { b: [1, 2, 3] })).toBe(3);
    expect(ev("last(b) > 2", { b: [1, 2, 3] })).toBe(true);
    expect(ev("last(b, 2)", { b: [1, 2, 3] })).toEqual([2, 3]);
    expect(ev("last(b, n=0)", { b: [1, 2, 3] })).toEqual([1, 2, 3]);
    expect(ev("moving_avg([1, 2, 3, 4])")).toBe(2.5);
    expect(ev("moving_avg([1, 2, 3, 4], 2)")).toBe(3.5);
    expect(ev("moving_avg([], window=3)")).toBe(0);
    expect(err("last([])")).toContain("last() of an empty sequence");
  });
  test("argument binding errors name the function", () => {
    expect(err("abs()")).toContain("abs() missing required argument 'x'");
    expect(err("abs(1, 2)")).toContain("abs() takes at most 1 arguments");
    expect(err("round(1, digits=2)")).toContain("unexpected keyword argument 'digits'");
    expect(err("round(1, 2, ndigits=2)")).toContain("multiple values for argument 'ndigits'");
    expect(err("mean('abc')")).toContain("mean() needs numbers");
  });
  test("a variable named like a function shadows it, as upstream's scope does", () => {
    expect(err("mean(x)", { mean: 1, x: 2 })).toContain("'int' object is not callable");
  });
});

describe("compiling", () => {
  test("compile once, evaluate many with different variables", () => {
    const c = compileExpr("mean(sig_buf) > limit and not tripped");
    expect([...c.names].sort()).toEqual(["limit", "sig_buf", "tripped"]);
    expect(
      c.evaluate(
        new Map<string, Value>([
          ["sig_buf", [1, 2]],
          ["limit", 1],
          ["tripped", false],
        ]),
      ),
    ).toBe(true);
    expect(
      c.evaluate(
        new Map<string, Value>([
          ["sig_buf", [0]],
          ["limit", 1],
          ["tripped", false],
        ]),
      ),
    ).toBe(false);
  });
  test("errors name the rule or transform, the column and the source", () => {
    try {
      compileExpr("a +* b", { where: "Rule TRIP condition" });
      throw new Error("not refused");
    } catch (e) {
      expect((e as Error).message).toBe(
        `Rule TRIP condition: unexpected '*' (expected a value) at column 4 of "a +* b"`,
      );
    }
    const c = compileExpr("x / y", { where: "Transform AVG" });
    expect(() =>
      c.evaluate(
        new Map<string, Value>([
          ["x", 1],
          ["y", 0],
        ]),
      ),
    ).toThrow('Transform AVG: ZeroDivisionError: division by zero at column 3 of "x / y"');
  });
  test("plugins can register functions; a throwing one is an evaluation error", () => {
    const twice: ExprFunction = { params: ["x"], required: 1, call: ([x]) => Number(x) * 2 };
    const boom: ExprFunction = {
      params: [],
      required: 0,
      call: () => {
        throw new Error("kaput");
      },
    };
    const fns = functionsWith({ twice, boom });
    expect(compileExpr("twice(21)", { functions: fns }).evaluate(new Map())).toBe(42);
    expect(() => compileExpr("boom()", { functions: fns }).evaluate(new Map())).toThrow(
      "boom() failed: kaput",
    );
    expect(() => compileExpr("twice(1)").evaluate(new Map())).toThrow(
      "function 'twice' is not registered",
    );
  });
  test("syntax errors", () => {
    expect(err("")).toContain("empty expression");
    expect(err("(1")).toContain("unexpected end of expression");
    expect(err("1 +")).toContain("unexpected end");
    expect(err("'abc")).toContain("unterminated string");
    expect(err("1 2")).toContain("unexpected '2'");
    expect(err("x if y")).toContain("expected 'else'");
    expect(err("f(a=1, 2)")).toContain("positional argument follows keyword");
    expect(err("$")).toContain("invalid character '$'");
  });
});
