/**
 * The DBR layout tables and put encoding, checked against libca's own exported tables
 * (dbr_size, dbr_value_size, dbr_value_offset) so a wrong offset cannot hide.
 */

import { dlopen, FFIType, read } from "bun:ffi";
import { describe, expect, test } from "bun:test";
import {
  DBR_SIZE,
  DBR_TYPE_COUNT,
  DBR_VALUE_OFFSET,
  DBR_VALUE_SIZE,
  dbrSizeN,
  decodeDbr,
} from "../../ffi/dbr.ts";
import { CaBadTypeError, encodePut, LIBCA_SONAME } from "../../ffi/index.ts";

function libcaTable(name: string): number[] {
  // Data symbols: declaring them as functions is the way bun:ffi hands out their address.
  const lib = dlopen(LIBCA_SONAME, { [name]: { args: [], returns: FFIType.void } });
  const fn = lib.symbols[name] as unknown as { ptr: number };
  const out: number[] = [];
  for (let i = 0; i < DBR_TYPE_COUNT; i++) {
    out.push(read.u16(fn.ptr as unknown as Parameters<typeof read.u16>[0], i * 2));
  }
  lib.close();
  return out;
}

describe("DBR tables", () => {
  test("dbr_size matches libca", () => {
    expect([...DBR_SIZE]).toEqual(libcaTable("dbr_size"));
  });
  test("dbr_value_size matches libca", () => {
    expect([...DBR_VALUE_SIZE]).toEqual(libcaTable("dbr_value_size"));
  });
  test("dbr_value_offset matches libca", () => {
    expect([...DBR_VALUE_OFFSET]).toEqual(libcaTable("dbr_value_offset"));
  });
  test("dbrSizeN adds whole elements", () => {
    expect(dbrSizeN(20, 1)).toBe(24);
    expect(dbrSizeN(20, 3)).toBe(40);
    expect(dbrSizeN(34, 0)).toBe(88);
  });
});

describe("decodeDbr", () => {
  test("TIME_DOUBLE: alarm, EPICS-epoch timestamp, value", () => {
    const b = new Uint8Array(24);
    const dv = new DataView(b.buffer);
    dv.setInt16(0, 4, true);
    dv.setInt16(2, 1, true);
    dv.setUint32(4, 1000, true);
    dv.setUint32(8, 500_000_000, true);
    dv.setFloat64(16, 2.5, true);
    const r = decodeDbr(20, 1, b, false);
    expect(r).toMatchObject({ value: 2.5, status: 4, severity: 1, nativeType: "double" });
    expect(r.stamp).toEqual({ sec: 631152000 + 1000, nsec: 500_000_000 });
    expect(r.timestamp?.getTime()).toBe((631152000 + 1000) * 1000 + 500);
  });
  test("arrays are copied into fresh typed arrays", () => {
    const b = new Uint8Array(dbrSizeN(5, 3));
    const dv = new DataView(b.buffer);
    [7, -8, 9].forEach((x, i) => {
      dv.setInt32(i * 4, x, true);
    });
    const r = decodeDbr(5, 3, b, true);
    b.fill(0);
    expect(r.value).toEqual(new Int32Array([7, -8, 9]));
  });
  test("CTRL_SHORT and CTRL_FLOAT (native types our server does not serve) decode by offset", () => {
    const b = new Uint8Array(dbrSizeN(29, 1));
    const dv = new DataView(b.buffer);
    b.set(new TextEncoder().encode("V"), 4);
    [100, -100, 90, 80, -80, -90, 50, -50].forEach((x, i) => {
      dv.setInt16(12 + i * 2, x, true);
    });
    dv.setInt16(28, -7, true);
    expect(decodeDbr(29, 1, b, false)).toMatchObject({
      value: -7,
      nativeType: "short",
      units: "V",
      displayLimits: { low: -100, high: 100 },
      alarmLimits: { hihi: 90, high: 80, low: -80, lolo: -90 },
      controlLimits: { low: -50, high: 50 },
    });
    const f = new Uint8Array(dbrSizeN(30, 2));
    const fv = new DataView(f.buffer);
    fv.setInt16(4, 2, true);
    f.set(new TextEncoder().encode("A"), 8);
    fv.setFloat32(16, 5, true);
    fv.setFloat32(20, -5, true);
    fv.setFloat32(48, 1.5, true);
    fv.setFloat32(52, -2.5, true);
    const r = decodeDbr(30, 2, f, true);
    expect(r).toMatchObject({ precision: 2, units: "A", displayLimits: { low: -5, high: 5 } });
    expect(r.value).toEqual(new Float32Array([1.5, -2.5]));
  });

  test("strings stop at NUL and never run past 40 bytes", () => {
    const b = new Uint8Array(40).fill(65);
    expect(decodeDbr(0, 1, b, false).value).toBe("A".repeat(40));
    b[3] = 0;
    expect(decodeDbr(0, 1, b, false).value).toBe("AAA");
  });
});

describe("encodePut", () => {
  test("numbers by native type", () => {
    expect(encodePut(6, 1, 1.5, "X")).toMatchObject({ type: 6, count: 1 });
    expect(encodePut(2, 1, "2.5", "X").type).toBe(6);
    const l = encodePut(5, 4, [1, 2, 3], "X");
    expect(l).toMatchObject({ type: 5, count: 3 });
    expect(new Int32Array(l.data.buffer)).toEqual(new Int32Array([1, 2, 3]));
    expect(encodePut(1, 1, true, "X").type).toBe(5);
  });
  test("enum takes an index or a state name", () => {
    expect(encodePut(3, 1, 1, "X")).toMatchObject({ type: 3, count: 1 });
    expect(encodePut(3, 1, "Open", "X")).toMatchObject({ type: 0, count: 1 });
    expect(() => encodePut(3, 1, 70000, "X")).toThrow(CaBadTypeError);
    expect(() => encodePut(3, 1, "x".repeat(50), "X")).toThrow(CaBadTypeError);
  });
  test("char arrays take a string with its NUL", () => {
    const e = encodePut(4, 16, "héllo", "X");
    expect(e.count).toBe(7);
    expect(new TextDecoder().decode(e.data.subarray(0, 6))).toBe("héllo");
    expect(e.data[6]).toBe(0);
    expect(() => encodePut(4, 3, "toolong", "X")).toThrow(CaBadTypeError);
  });
  test("strings are truncated to 39 bytes and NUL-terminated", () => {
    const e = encodePut(0, 1, "y".repeat(100), "X");
    expect(e.data.length).toBe(40);
    expect(e.data[39]).toBe(0);
  });
  test("hostile input is refused before anything is sent", () => {
    expect(() => encodePut(6, 1, { a: 1 }, "X")).toThrow(CaBadTypeError);
    expect(() => encodePut(6, 1, "abc", "X")).toThrow(/expected a number/);
    expect(() => encodePut(6, 1, null, "X")).toThrow(CaBadTypeError);
    expect(() => encodePut(6, 10, new Float64Array(11), "X")).toThrow(/at most 10/);
    expect(() => encodePut(6, 10, [], "X")).toThrow(/empty/);
    expect(() => encodePut(5, 1, Number.POSITIVE_INFINITY, "X")).toThrow(/finite/);
    expect(() => encodePut(0, 1, [{}], "X")).toThrow(CaBadTypeError);
    // A huge array is rejected by its length, not after converting 10^7 elements.
    expect(() => encodePut(6, 100, new Float64Array(10_000_000), "X")).toThrow(/at most 100/);
  });
});
