import { describe, expect, test } from "bun:test";
import {
  DBR,
  type DbrSource,
  encodeDbr,
  encodePlainScalarInto,
} from "../../../src/ca/codec/index.ts";
import type { PvKind, PvValue } from "../../../src/pv/types.ts";

function src(kind: PvKind, value: PvValue, count = 1, length = 1): DbrSource {
  return {
    kind,
    count,
    length,
    value,
    status: 3,
    severity: 2,
    timestamp: { sec: 1_700_000_000, nsec: 5 },
    meta: { precision: 3, units: "mm" },
  };
}

describe("encodePlainScalarInto (the get fast path)", () => {
  const values = [0, -1, 1.5, -2.75, 65535.9, 2 ** 31, -(2 ** 31) - 7, 1e300, Number.NaN, Infinity];
  const kinds: PvKind[] = ["double", "long", "enum", "char"];
  const plain = [DBR.SHORT, DBR.FLOAT, DBR.ENUM, DBR.CHAR, DBR.LONG, DBR.DOUBLE];

  test("writes exactly encodeDbr's bytes for every plain numeric type, kind and value", () => {
    let checked = 0;
    for (const kind of kinds) {
      for (const v of values) {
        for (const t of plain) {
          const s = src(kind, v);
          const ref = encodeDbr(s, t, 1);
          if ("error" in ref) throw new Error(`encodeDbr failed for ${kind} ${v} ${t}`);
          // Garbage around and under the target slot: the fast path must zero its own padding.
          const out = new Uint8Array(24).fill(0xaa);
          expect(encodePlainScalarInto(s, t, out, 8)).toBe(true);
          expect([...out.subarray(8, 16)]).toEqual([...ref.payload]);
          expect([...out.subarray(0, 8)]).toEqual(Array(8).fill(0xaa));
          expect([...out.subarray(16)]).toEqual(Array(8).fill(0xaa));
          checked++;
        }
      }
    }
    expect(checked).toBe(kinds.length * values.length * plain.length);
  });

  test("declines (writing nothing) what is not a plain scalar numeric get", () => {
    const cases: [DbrSource, number][] = [
      [src("double", 1), DBR.STRING],
      [src("double", 1), DBR.TIME_DOUBLE],
      [src("double", 1), DBR.CTRL_DOUBLE],
      [src("string", "1.5"), DBR.DOUBLE],
      [src("double", new Float64Array([1, 2]), 2, 2), DBR.DOUBLE],
      [src("double", 0, 1, 0), DBR.DOUBLE], // no valid element
      [src("double", 1), 99],
    ];
    for (const [s, t] of cases) {
      const out = new Uint8Array(8).fill(0xaa);
      expect(encodePlainScalarInto(s, t, out, 0)).toBe(false);
      expect([...out]).toEqual(Array(8).fill(0xaa));
    }
  });
});
