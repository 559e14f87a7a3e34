import { describe, expect, test } from "bun:test";
import {
  CalcError,
  calcIsTrue,
  compileCalc,
  MAX_CALC_DEPTH,
  MAX_CALC_LENGTH,
} from "../../src/access/calc.ts";

function run(expr: string, inputs: number[] = []): number {
  const args = new Float64Array(12);
  inputs.forEach((v, i) => {
    args[i] = v;
  });
  return compileCalc(expr).evaluate(args);
}

function errorOf(expr: string): CalcError {
  try {
    compileCalc(expr);
  } catch (e) {
    if (e instanceof CalcError) return e;
    throw e;
  }
  throw new Error(`"${expr}" compiled`);
}

describe("CALC expressions", () => {
  test("inputs, arithmetic and EPICS precedence", () => {
    expect(run("A+B*C", [1, 2, 3])).toBe(7);
    expect(run("(A+B)*C", [1, 2, 3])).toBe(9);
    expect(run("2^3^2")).toBe(64); // left-associative in EPICS
    expect(run("2**3")).toBe(8);
    expect(run("-2^2")).toBe(4); // unary binds tighter than ^
    expect(run("7%3")).toBe(1);
    expect(run("7.9%3.2")).toBe(1); // integer modulo
    expect(Number.isNaN(run("1%0"))).toBe(true);
    expect(run("1/0")).toBe(Number.POSITIVE_INFINITY);
    expect(run("L", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42])).toBe(42);
  });

  test("comparison and logical operators give 1 or 0", () => {
    expect(run("A=1", [1])).toBe(1);
    expect(run("A==1", [2])).toBe(0);
    expect(run("A#1", [2])).toBe(1);
    expect(run("A!=1", [1])).toBe(0);
    expect(run("A<=1 && B>=2", [1, 2])).toBe(1);
    expect(run("A<1 || B>2", [1, 2])).toBe(0);
    expect(run("!A", [0])).toBe(1);
    expect(run("!A", [Number.NaN])).toBe(0); // C truth: NaN is true
    expect(run("A > 0 && B = 1", [1, 1])).toBe(1); // comparison binds tighter than &&
  });

  test("bitwise operators, shifts and words, case-insensitive", () => {
    expect(run("A&B", [6, 3])).toBe(2);
    expect(run("a and b", [6, 3])).toBe(2);
    expect(run("A|B", [4, 1])).toBe(5);
    expect(run("A or B", [4, 1])).toBe(5);
    expect(run("A xor B", [6, 3])).toBe(5);
    expect(run("1<<4")).toBe(16);
    expect(run("-16>>2")).toBe(-4);
    expect(run("-1>>>28")).toBe(15);
    expect(run("~0")).toBe(-1);
    expect(run("NOT 0")).toBe(-1);
    expect(run("0xFF")).toBe(255);
    expect(run("0xFFFFFFFF")).toBe(-1);
  });

  test("conditional operator, nested and right-associative", () => {
    expect(run("A?B:C", [1, 2, 3])).toBe(2);
    expect(run("A?B:C", [0, 2, 3])).toBe(3);
    expect(run("A?1:B?2:3", [0, 1])).toBe(2);
    expect(run("A?B?4:5:6", [1, 0])).toBe(5);
    expect(run("A ? 1 : 2 + 3", [0])).toBe(5);
  });

  test("functions and constants", () => {
    expect(run("ABS(A)", [-3])).toBe(3);
    expect(run("ABS A + 1", [-3])).toBe(4);
    expect(run("MAX(A,B,C)", [1, 5, 3])).toBe(5);
    expect(run("MIN(A,B,C)", [1, 5, 3])).toBe(1);
    expect(run("MAX A", [7])).toBe(7);
    expect(run("SQRT(16)+SQR(9)")).toBe(7);
    expect(run("NINT(2.5)+NINT(-2.5)")).toBe(0);
    expect(run("FLOOR(1.5)+CEIL(1.5)")).toBe(3);
    expect(run("ISNAN(A,B)", [1, Number.NaN])).toBe(1);
    expect(run("FINITE(A,B)", [1, Number.POSITIVE_INFINITY])).toBe(0);
    expect(run("ISINF(-INF)")).toBe(1);
    expect(run("ISNAN(NAN)")).toBe(1);
    expect(run("ATAN2(1,0)")).toBeCloseTo(0); // EPICS swaps the arguments
    expect(run("FMOD(7.5,2)")).toBe(1.5);
    expect(run("PI")).toBeCloseTo(Math.PI);
    expect(run("180*D2R")).toBeCloseTo(Math.PI);
    expect(run("LOG(100)+LN(1)")).toBe(2);
    expect(run("1.5e2")).toBe(150);
    expect(run(".5")).toBe(0.5);
  });

  test("inputsUsed names the inputs read", () => {
    expect(compileCalc("A=1").inputsUsed).toBe(1);
    expect(compileCalc("B && L").inputsUsed).toBe((1 << 1) | (1 << 11));
    expect(compileCalc("PI > 3").inputsUsed).toBe(0);
    expect(compileCalc("ABS(C)").inputsUsed).toBe(1 << 2);
  });

  test("VAL reads the previous result", () => {
    const p = compileCalc("VAL+1");
    expect(p.evaluate(new Float64Array(12), 1)).toBe(2);
  });

  test("the ACF truth test is 0.99 < x < 1.01", () => {
    expect(calcIsTrue(1)).toBe(true);
    expect(calcIsTrue(1.005)).toBe(true);
    expect(calcIsTrue(2)).toBe(false);
    expect(calcIsTrue(0)).toBe(false);
    expect(calcIsTrue(Number.NaN)).toBe(false);
  });

  test("malformed expressions are refused with the offset of the problem", () => {
    expect(errorOf("A+").message).toContain("operand expected");
    expect(errorOf("A+").offset).toBe(2);
    expect(errorOf("(A+B").message).toContain("expected ')'");
    expect(errorOf("A B").offset).toBe(2);
    expect(errorOf("A?B").message).toContain("expected ':'");
    expect(errorOf("M").message).toContain("operand expected");
    expect(errorOf("A:=1").message).toContain("assignments");
    expect(errorOf("A;B").message).toContain("multiple expressions");
    expect(errorOf("").message).toContain("empty");
    expect(errorOf("ATAN2(1)").message).toContain("2 arguments");
    expect(errorOf("A)").message).toContain("unexpected ')'");
    expect(errorOf("A $ B").offset).toBe(2);
  });

  test("hostile expressions are bounded: length, nesting, unary chains", () => {
    expect(errorOf("A+".repeat(MAX_CALC_LENGTH)).message).toContain("longer than");
    const deep = `${"(".repeat(MAX_CALC_DEPTH)}A${")".repeat(MAX_CALC_DEPTH)}`;
    expect(errorOf(deep).message).toContain("nested deeper");
    expect(errorOf(`${"-".repeat(MAX_CALC_DEPTH + 1)}A`).message).toContain("nested deeper");
    expect(errorOf(`${"A?".repeat(MAX_CALC_DEPTH)}1`).message).toContain("nested deeper");
    // Long but flat is fine, and evaluates without recursion trouble.
    const flat = Array.from({ length: 1000 }, () => "A").join("+");
    expect(run(flat, [1])).toBe(1000);
  });
});
