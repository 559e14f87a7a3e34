/**
 * decodePlainScalarAt (the write path's in-place decoding of one plain number) must answer
 * exactly as decodePut does for every form it takes, and decline (null) every other form.
 */
import { describe, expect, test } from "bun:test";
import {
  DBR,
  decodePlainScalarAt,
  decodePut,
  type PutTarget,
} from "../../../src/ca/codec/index.ts";
import type { PvKind } from "../../../src/pv/types.ts";
import { prng } from "./helpers.ts";

const tgt = (kind: PvKind, count = 1): PutTarget => ({ kind, count, meta: {} });
const PLAIN_NUMERIC = [DBR.SHORT, DBR.FLOAT, DBR.ENUM, DBR.CHAR, DBR.LONG, DBR.DOUBLE];

describe("decodePlainScalarAt", () => {
  test("equals decodePut for every plain numeric type into double, long and char", () => {
    const rnd = prng(11);
    const buf = new Uint8Array(64);
    const special = [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      -0,
      1e300,
      -1e-300,
      2 ** 31,
      -(2 ** 31) - 1,
    ];
    for (let i = 0; i < 4000; i++) {
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rnd() * 256);
      const type = PLAIN_NUMERIC[i % PLAIN_NUMERIC.length] as number;
      const off = 16 + (i % 8) * 3; // also odd offsets: the payload lies anywhere in a chunk
      if (type === DBR.DOUBLE && i % 5 === 0) {
        new DataView(buf.buffer).setFloat64(off, special[i % special.length] as number);
      }
      for (const kind of ["double", "long", "char"] as const) {
        const payload = buf.slice(off, off + 8);
        const want = decodePut(type, 1, payload, tgt(kind), true);
        const got = decodePlainScalarAt(type, 1, buf, off, 8, tgt(kind));
        expect({ value: got }).toEqual(want as { value: number });
      }
    }
  });

  test("declines the forms it does not decode (decodePut answers them)", () => {
    const buf = new Uint8Array(16);
    expect(decodePlainScalarAt(DBR.STRING, 1, buf, 0, 16, tgt("double"))).toBeNull();
    expect(decodePlainScalarAt(DBR.TIME_DOUBLE, 1, buf, 0, 16, tgt("double"))).toBeNull();
    expect(decodePlainScalarAt(DBR.DOUBLE, 2, buf, 0, 16, tgt("double"))).toBeNull();
    expect(decodePlainScalarAt(DBR.DOUBLE, 1, buf, 0, 16, tgt("double", 4))).toBeNull();
    expect(decodePlainScalarAt(DBR.DOUBLE, 1, buf, 0, 16, tgt("enum"))).toBeNull();
    expect(decodePlainScalarAt(DBR.DOUBLE, 1, buf, 0, 16, tgt("string"))).toBeNull();
    // Too short for the element: decodePut reports the error.
    expect(decodePlainScalarAt(DBR.DOUBLE, 1, buf, 0, 4, tgt("double"))).toBeNull();
    expect(decodePlainScalarAt(DBR.LONG, 1, buf, 0, 8, tgt("long"))).toBe(0);
  });
});
