/**
 * Writes that respect the PV: the checks of Pv.write, the one function every protocol path (CA,
 * pvAccess, PVWS/console, REST) writes through.
 */
import { describe, expect, test } from "bun:test";
import { PvRegistry, PvWriteError } from "../../src/pv/index.ts";

async function refusal(p: Promise<void>): Promise<PvWriteError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PvWriteError) return e;
    throw e;
  }
  throw new Error("write was accepted");
}

describe("client writes", () => {
  test("NaN and ±Infinity are refused where drive limits exist, one-sided too", async () => {
    const reg = new PvRegistry();
    const both = reg.add({
      name: "W:BOTH",
      kind: "double",
      writable: true,
      meta: { controlLow: 0, controlHigh: 10 },
    });
    const low = reg.add({ name: "W:LOW", kind: "double", writable: true, meta: { controlLow: 0 } });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, "NaN"]) {
      expect((await refusal(both.write(bad))).code).toBe("range");
      expect((await refusal(low.write(bad))).code).toBe("range");
    }
    expect((await refusal(both.write(11))).reason).toContain("outside drive limits");
    await both.write(5);
    expect(both.value).toBe(5);
    const arr = reg.add({
      name: "W:ARR",
      kind: "double",
      count: 3,
      writable: true,
      meta: { controlLow: 0, controlHigh: 10 },
    });
    expect((await refusal(arr.write([1, Number.NaN]))).code).toBe("range");
  });

  test("without limits NaN passes unless the PV asks for finite values", async () => {
    const reg = new PvRegistry();
    const free = reg.add({ name: "W:FREE", kind: "double", writable: true });
    await free.write(Number.NaN);
    expect(Number.isNaN(free.value as number)).toBe(true);
    const fin = reg.add({
      name: "W:FIN",
      kind: "double",
      writable: true,
      meta: { finiteOnly: true },
    });
    expect((await refusal(fin.write(Number.POSITIVE_INFINITY))).reason).toContain(
      "not a finite number",
    );
    await fin.write(1e300);
    expect(fin.value).toBe(1e300);
  });

  test("strings longer than 39 bytes and arrays longer than the PV are refused, not cut", async () => {
    const reg = new PvRegistry();
    const s = reg.add({ name: "W:S", kind: "string", writable: true });
    await s.write("x".repeat(39));
    expect((await refusal(s.write("x".repeat(40)))).reason).toContain("at most 39 fit");
    expect((await refusal(s.write("é".repeat(20)))).code).toBe("range"); // 40 bytes in UTF-8
    expect(s.value).toBe("x".repeat(39));
    const a = reg.add({ name: "W:A", kind: "long", count: 4, writable: true });
    await a.write([1, 2, 3, 4]);
    expect((await refusal(a.write([1, 2, 3, 4, 5]))).reason).toContain("at most 4 fit");
    expect((await refusal(a.write(new Int32Array(5)))).code).toBe("range");
    const c = reg.add({ name: "W:C", kind: "char", count: 8, writable: true });
    await c.write("1234567");
    expect((await refusal(c.write("12345678"))).reason).toContain("at most 7 fit");
  });

  test("enum index range is enforced; state names are accepted", async () => {
    const reg = new PvRegistry();
    const e = reg.add({
      name: "W:E",
      kind: "enum",
      writable: true,
      meta: { states: ["Off", "On"] },
    });
    await e.write("On");
    expect(e.value).toBe(1);
    expect((await refusal(e.write(2))).reason).toContain("out of range 0..1");
    expect((await refusal(e.write(-1))).code).toBe("type");
    expect((await refusal(e.write("Maybe"))).code).toBe("type");
  });
});

describe("access security group of a PV", () => {
  test("kept from the spec; a bad name is refused at creation", () => {
    const reg = new PvRegistry();
    expect(reg.add({ name: "G:A", kind: "double", asg: "CTRL" }).asg).toBe("CTRL");
    expect(reg.add({ name: "G:B", kind: "double" }).asg).toBeUndefined();
    expect(() => reg.add({ name: "G:C", kind: "double", asg: "a b" })).toThrow(
      "access security group",
    );
    expect(() => reg.add({ name: "G:D", kind: "double", asg: "" })).toThrow(
      "access security group",
    );
  });
});
