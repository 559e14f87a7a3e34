import { describe, expect, test } from "bun:test";
import {
  DBR,
  type DbrSource,
  decodePut,
  ECA,
  encodeDbr,
  enumString,
  formatDouble,
  isValidDbrType,
  nativeDbrType,
  type PutTarget,
  parseLeadingNumber,
  toFloat32,
} from "../../../src/ca/codec/index.ts";
import type { PvKind, PvMeta, PvValue } from "../../../src/pv/types.ts";
import { bytes, h, hex, prng } from "./helpers.ts";

const EPOCH = 631152000;

function src(kind: PvKind, value: PvValue, extra: Partial<DbrSource> = {}): DbrSource {
  const length = typeof value === "object" ? value.length : 1;
  return {
    kind,
    count: typeof value === "object" ? Math.max(length, 1) : 1,
    length,
    value,
    status: 0,
    severity: 0,
    timestamp: { sec: EPOCH + 0x12345678, nsec: 0x09abcdef },
    meta: {},
    ...extra,
  };
}

function enc(s: DbrSource, type: number, count = 1): string {
  const r = encodeDbr(s, type, count);
  if ("error" in r) throw new Error(`encodeDbr error ${r.error}`);
  return hex(r.payload);
}

const cstr = (s: string, size: number) => {
  const out = new Uint8Array(size);
  out.set(new TextEncoder().encode(s));
  return hex(out);
};

describe("encodeDbr golden bytes (ca-protocol-facts.md: DBR types, Worked examples)", () => {
  const dbl = src("double", 3.5, {
    status: 4,
    severity: 1,
    meta: { precision: 2, units: "mm", displayLow: -1, displayHigh: 10 },
  });

  test("DOUBLE, STS_DOUBLE, TIME_DOUBLE", () => {
    expect(enc(dbl, DBR.DOUBLE)).toBe(h("400c000000000000"));
    expect(enc(dbl, DBR.STS_DOUBLE)).toBe(h("0004 0001 00000000 400c000000000000"));
    expect(enc({ ...dbl, status: 0, severity: 0 }, DBR.TIME_DOUBLE)).toBe(
      h("0000 0000 12345678 09abcdef 00000000 400c000000000000"),
    );
  });

  test("GR_DOUBLE: precision, units, display limits, unset alarm limits are NaN", () => {
    expect(enc(dbl, DBR.GR_DOUBLE)).toBe(
      h(`0004 0001 0002 0000 6d6d000000000000
         4024000000000000 bff0000000000000
         7ff8000000000000 7ff8000000000000 7ff8000000000000 7ff8000000000000
         400c000000000000`),
    );
  });

  test("float and short requested from a double PV", () => {
    expect(enc(dbl, DBR.FLOAT)).toBe(h("40600000 00000000"));
    expect(enc(src("double", 3.7), DBR.SHORT)).toBe(h("0003 000000000000"));
    expect(enc(src("double", -3.7), DBR.SHORT)).toBe(h("fffd 000000000000"));
    expect(enc(dbl, DBR.TIME_FLOAT)).toBe(h("0004 0001 12345678 09abcdef 40600000"));
    expect(enc(dbl, DBR.STS_SHORT)).toBe(h("0004 0001 0003 0000"));
    expect(enc(dbl, DBR.GR_FLOAT).length / 2).toBe(48); // 44 padded
  });

  test("CTRL_LONG: units, 8 limits, value", () => {
    const lng = src("long", 7, {
      meta: {
        units: "V",
        displayLow: 0,
        displayHigh: 100,
        controlLow: 1,
        controlHigh: 50,
        alarm: { high: 90 },
      },
    });
    expect(enc(lng, DBR.CTRL_LONG)).toBe(
      h(`0000 0000 5600000000000000
         00000064 00000000 00000000 0000005a 00000000 00000000 00000032 00000001
         00000007`),
    );
    expect(enc(lng, DBR.LONG)).toBe(h("00000007 00000000"));
    expect(enc(lng, DBR.TIME_LONG)).toBe(h("0000 0000 12345678 09abcdef 00000007"));
  });

  test("char: STS_CHAR pad byte, TIME_CHAR pads, GR_CHAR", () => {
    const chr = src("char", 0x41, { meta: { units: "x", displayHigh: 200 } });
    expect(enc(chr, DBR.CHAR)).toBe(h("41 00000000000000"));
    expect(enc(chr, DBR.STS_CHAR)).toBe(h("0000 0000 00 41 0000"));
    expect(enc(chr, DBR.TIME_CHAR)).toBe(h("0000 0000 12345678 09abcdef 0000 00 41"));
    expect(enc(chr, DBR.GR_CHAR)).toBe(
      h("0000 0000 7800000000000000 c8 00 00 00 00 00 00 41 00000000"),
    );
  });

  test("enum: ENUM, TIME_ENUM, GR_ENUM with no_str and 26-byte strings", () => {
    const e = src("enum", 1, { status: 7, severity: 2, meta: { states: ["Off", "On"] } });
    expect(enc(e, DBR.ENUM)).toBe(h("0001 000000000000"));
    expect(enc(e, DBR.TIME_ENUM)).toBe(h("0007 0002 12345678 09abcdef 0000 0001"));
    const gr = enc(e, DBR.GR_ENUM);
    expect(gr.length / 2).toBe(424);
    expect(gr.slice(0, 12)).toBe(h("0007 0002 0002"));
    expect(gr.slice(12, 12 + 52 * 2)).toBe(cstr("Off", 26) + cstr("On", 26));
    expect(gr.slice(12 + 104, 844)).toBe("0".repeat(844 - 116));
    expect(gr.slice(844)).toBe(h("0001"));
    expect(enc(e, DBR.CTRL_ENUM)).toBe(gr);
    expect(enc(e, DBR.STRING)).toBe(cstr("On", 40));
  });

  test("string: STRING, STS/GR/CTRL_STRING share a layout, TIME_STRING, STSACK, CLASS_NAME", () => {
    const s = src("string", "hello", { status: 17, severity: 3 });
    expect(enc(s, DBR.STRING)).toBe(cstr("hello", 40));
    const sts = h("0011 0003") + cstr("hello", 40) + h("00000000");
    expect(enc(s, DBR.STS_STRING)).toBe(sts);
    expect(enc(s, DBR.GR_STRING)).toBe(sts);
    expect(enc(s, DBR.CTRL_STRING)).toBe(sts);
    expect(enc(s, DBR.TIME_STRING)).toBe(
      h("0011 0003 12345678 09abcdef") + cstr("hello", 40) + h("00000000"),
    );
    expect(enc(s, DBR.STSACK_STRING)).toBe(h("0011 0003 0001 0000") + cstr("hello", 40));
    expect(enc(s, DBR.CLASS_NAME)).toBe(cstr("stringin", 40));
    expect(enc(src("double", 1), DBR.CLASS_NAME)).toBe(cstr("ai", 40));
    expect(enc(src("double", new Float64Array(4)), DBR.CLASS_NAME)).toBe(cstr("waveform", 40));
  });

  test("a 39-byte string fills the element, a NUL always ends it", () => {
    const s39 = "a".repeat(39);
    expect(enc(src("string", s39), DBR.STRING)).toBe(cstr(s39, 40));
    // UTF-8 is cut on a character boundary within 39 bytes.
    const u = "é".repeat(25); // 50 bytes
    const out = enc(src("string", u), DBR.STRING);
    expect(out).toBe(cstr("é".repeat(19), 40));
  });

  test("timestamps before the EPICS epoch encode as 0", () => {
    const s = src("long", 1, { timestamp: { sec: 1000, nsec: 1 } });
    expect(enc(s, DBR.TIME_LONG)).toBe(h("0000 0000 00000000 00000001 00000001"));
  });
});

describe("encodeDbr counts", () => {
  const arr = src("long", new Int32Array([1, 2, 3]), { count: 10 });

  test("count 0 = the valid elements", () => {
    const r = encodeDbr(arr, DBR.LONG, 0);
    expect(r).toEqual({ payload: bytes("00000001 00000002 00000003 00000000"), count: 3 });
    const t = encodeDbr(arr, DBR.TIME_LONG, 0);
    expect("count" in t && t.count).toBe(3);
  });

  test("fixed count beyond the valid elements is zero-filled; above the max it is clamped", () => {
    expect(encodeDbr(arr, DBR.LONG, 5)).toEqual({
      payload: bytes("00000001 00000002 00000003 00000000 00000000 00000000"),
      count: 5,
    });
    const r = encodeDbr(arr, DBR.LONG, 1000);
    expect("count" in r && r.count).toBe(10);
    expect("payload" in r && r.payload.length).toBe(40);
    expect(encodeDbr(arr, DBR.LONG, 2)).toEqual({ payload: bytes("00000001 00000002"), count: 2 });
  });

  test("count 0 on an empty array answers count 0 and the metadata part only (rsrv, measured)", () => {
    const empty = src("char", new Uint8Array(0), { count: 16 });
    expect(encodeDbr(empty, DBR.CHAR, 0)).toEqual({ payload: new Uint8Array(0), count: 0 });
    const types: number[] = [DBR.STRING, DBR.DOUBLE, DBR.STS_DOUBLE, DBR.TIME_DOUBLE];
    types.push(DBR.TIME_STRING, DBR.GR_DOUBLE, DBR.CTRL_DOUBLE, DBR.CTRL_ENUM, DBR.STSACK_STRING);
    const sizes = types.map((t) => {
      const r = encodeDbr(empty, t, 0);
      return "payload" in r ? [r.count, r.payload.length] : r;
    });
    // softIoc 7.0.8.1 on a waveform with NORD 0: DOUBLE 0 bytes, TIME_DOUBLE 16, CTRL_DOUBLE 80.
    expect(sizes).toEqual([
      [0, 0],
      [0, 0],
      [0, 8],
      [0, 16],
      [0, 16],
      [0, 64],
      [0, 80],
      [0, 424],
      [0, 8],
    ]);
    // The class name is not an array of values: count 0 answers the element count.
    const cls = encodeDbr(empty, DBR.CLASS_NAME, 0);
    expect("payload" in cls && [cls.count, cls.payload.length]).toEqual([16, 640]);
    expect("payload" in cls && new TextDecoder().decode(cls.payload.subarray(0, 8))).toBe(
      "waveform",
    );
  });

  test("a count-0 read of a non-numeric string PV as a number answers GETFAIL", () => {
    const s = src("string", "abc");
    expect(encodeDbr(s, DBR.DOUBLE, 0)).toEqual({ error: ECA.GETFAIL });
  });

  test("char arrays read as strings: one decimal number per element", () => {
    const c = src("char", new Uint8Array([72, 105]));
    expect(enc(c, DBR.STRING, 2)).toBe(cstr("72", 40) + cstr("105", 40));
  });

  test("invalid or write-only types, bad counts", () => {
    const s = src("double", 1);
    expect(encodeDbr(s, 39, 1)).toEqual({ error: ECA.BADTYPE });
    expect(encodeDbr(s, -1, 1)).toEqual({ error: ECA.BADTYPE });
    expect(encodeDbr(s, DBR.PUT_ACKT, 1)).toEqual({ error: ECA.BADTYPE });
    expect(encodeDbr(s, DBR.PUT_ACKS, 1)).toEqual({ error: ECA.BADTYPE });
    expect(encodeDbr(s, DBR.DOUBLE, -1)).toEqual({ error: ECA.BADCOUNT });
    expect(encodeDbr(s, DBR.DOUBLE, 1.5)).toEqual({ error: ECA.BADCOUNT });
    expect(isValidDbrType(38)).toBe(true);
    expect(isValidDbrType(39)).toBe(false);
  });

  test("native types", () => {
    expect(
      ["string", "enum", "char", "long", "double"].map((k) => nativeDbrType(k as PvKind)),
    ).toEqual([0, 3, 4, 5, 6]);
  });
});

describe("encodeDbr conversions", () => {
  test("formatDouble follows cvtDoubleToString", () => {
    const cases: [number, number, string][] = [
      [1.23456, 2, "1.23"],
      [1.5, 0, "2"],
      [2.5, 0, "3"],
      [-0.001, 2, "-0.00"],
      [0, 3, "0.000"],
      [1e7, 2, "10000000.00"],
      [-1e7, 1, "-10000000.0"],
      [12345678.9, 2, "12345678.90"],
      [12345678.9, 5, "12345678.900"],
      [1e16, 0, "10000000000000000"],
      [1e17, 2, " 1.00e+17"],
      [-1e17, 2, "-1.00e+17"],
      [1e21, 2, " 1.00e+21"],
      [1.5e-10, 2, "0.00"],
      [1.5e-10, 9, " 1.500000000e-10"],
      [123.456, 12, " 1.234560000000e+02"],
      [1, 20, "1.00000000000000000e+00".padStart(24)],
      [Number.NaN, 2, "nan"],
      [Number.NaN, 10, "nan".padStart(17)],
      [Number.POSITIVE_INFINITY, 2, "      inf"],
      [Number.NEGATIVE_INFINITY, 2, "     -inf"],
    ];
    for (const [v, p, want] of cases) expect([v, p, formatDouble(v, p)]).toEqual([v, p, want]);
  });

  test("a double PV read as DBR_STRING uses its PREC (default 6)", () => {
    expect(enc(src("double", 1.23456, { meta: { precision: 3 } }), DBR.STRING)).toBe(
      cstr("1.235", 40),
    );
    expect(enc(src("double", 1.23456789), DBR.STRING)).toBe(cstr("1.234568", 40));
    expect(
      enc(src("double", 2e20, { meta: { precision: 2 } }), DBR.TIME_STRING).slice(24, 24 + 80),
    ).toBe(cstr(" 2.00e+20", 40));
  });

  test("enum index → state string", () => {
    const states = ["Off", "On", "Fault"];
    expect(enumString(1, states)).toBe("On");
    expect(enumString(5, states)).toBe("");
    expect(enumString(16, states)).toBe("Illegal Value");
    expect(enumString(3, [])).toBe("3");
    expect(enc(src("enum", 20, { meta: { states } }), DBR.STRING)).toBe(cstr("Illegal Value", 40));
  });

  test("string → number: leading number, trailing text ignored, blank → 0, no digits → GETFAIL", () => {
    expect(enc(src("string", "  12.5abc"), DBR.DOUBLE)).toBe(h("4029000000000000"));
    expect(enc(src("string", "12.9"), DBR.LONG)).toBe(h("0000000c 00000000"));
    expect(enc(src("string", ""), DBR.DOUBLE)).toBe(h("0000000000000000"));
    expect(enc(src("string", "1e3"), DBR.TIME_DOUBLE).slice(32)).toBe(h("408f400000000000"));
    expect(encodeDbr(src("string", "abc"), DBR.DOUBLE, 1)).toEqual({ error: ECA.GETFAIL });
    expect(encodeDbr(src("string", "abc"), DBR.CTRL_LONG, 1)).toEqual({ error: ECA.GETFAIL });
  });

  test("parseLeadingNumber", () => {
    const cases: [string, number | null][] = [
      ["", 0],
      ["   ", 0],
      ["42", 42],
      ["-1.5e2xyz", -150],
      [".5", 0.5],
      ["5.", 5],
      ["+7 V", 7],
      ["\t-3", -3],
      ["1e", 1],
      ["inf", Number.POSITIVE_INFINITY],
      ["-Infinity", Number.NEGATIVE_INFINITY],
      ["abc", null],
      ["-", null],
      ["e5", null],
    ];
    for (const [s, want] of cases) expect([s, parseLeadingNumber(s)]).toEqual([s, want]);
    expect(parseLeadingNumber("nan")).toBeNaN();
  });

  test("double → float saturates at ±FLT_MAX and ±FLT_MIN, keeps NaN/Inf", () => {
    expect(enc(src("double", 1e39), DBR.FLOAT)).toBe(h("7f7fffff 00000000"));
    expect(enc(src("double", -1e39), DBR.FLOAT)).toBe(h("ff7fffff 00000000"));
    expect(enc(src("double", 1e-39), DBR.FLOAT)).toBe(h("00800000 00000000"));
    expect(enc(src("double", Number.POSITIVE_INFINITY), DBR.FLOAT)).toBe(h("7f800000 00000000"));
    expect(toFloat32(0)).toBe(0);
    expect(toFloat32(Number.NaN)).toBeNaN();
  });

  test("numeric casts: truncation toward zero and integer wrap-around", () => {
    expect(enc(src("long", 40000), DBR.SHORT)).toBe(h("9c40 000000000000"));
    expect(enc(src("long", -2), DBR.ENUM)).toBe(h("fffe 000000000000"));
    expect(enc(src("long", 300), DBR.CHAR)).toBe(h("2c 00000000000000"));
    expect(enc(src("double", Number.NaN), DBR.LONG)).toBe(h("00000000 00000000"));
    expect(enc(src("double", -7.9), DBR.LONG)).toBe(h("fffffff9 00000000"));
  });
});

const tgt = (kind: PvKind, count = 1, meta: PvMeta = {}): PutTarget => ({ kind, count, meta });
const sbytes = (s: string) => {
  const b = new TextEncoder().encode(`${s}\0`);
  const out = new Uint8Array((b.length + 7) & ~7);
  out.set(b);
  return out;
};
const f64 = (...v: number[]) => {
  const out = new Uint8Array(v.length * 8);
  const dv = new DataView(out.buffer);
  v.forEach((x, i) => {
    dv.setFloat64(i * 8, x);
  });
  return out;
};

describe("decodePut", () => {
  const enumT = tgt("enum", 1, { states: ["Off", "On", "Fault"] });

  test("plain numeric puts", () => {
    expect(decodePut(DBR.DOUBLE, 1, f64(3.5), tgt("double"), true)).toEqual({ value: 3.5 });
    expect(decodePut(DBR.DOUBLE, 1, f64(-1.9), tgt("long"), true)).toEqual({ value: -1 });
    expect(decodePut(DBR.SHORT, 1, bytes("fffe 000000000000"), tgt("long"), true)).toEqual({
      value: -2,
    });
    expect(decodePut(DBR.LONG, 1, bytes("0000012c 00000000"), tgt("char"), true)).toEqual({
      value: 44,
    });
    expect(decodePut(DBR.FLOAT, 1, bytes("40600000 00000000"), tgt("double"), false)).toEqual({
      value: 3.5,
    });
  });

  test("numeric strings (libca's short strlen+1 payloads)", () => {
    expect(decodePut(DBR.STRING, 1, sbytes("12.5"), tgt("double"), true)).toEqual({ value: 12.5 });
    expect(decodePut(DBR.STRING, 1, sbytes("  7 volts"), tgt("double"), true)).toEqual({
      value: 7,
    });
    expect(decodePut(DBR.STRING, 1, sbytes(""), tgt("double"), true)).toEqual({ value: 0 });
    expect(decodePut(DBR.STRING, 1, sbytes("12.9"), tgt("long"), true)).toEqual({ value: 12 });
    expect(decodePut(DBR.STRING, 1, sbytes("300"), tgt("char"), true)).toEqual({ value: 44 });
    // No NUL at all: read to the end of the payload.
    expect(
      decodePut(DBR.STRING, 1, new TextEncoder().encode("12345678"), tgt("long"), true),
    ).toEqual({ value: 12345678 });
  });

  test("junk strings to numbers fail with ECA_PUTFAIL and a message", () => {
    const r = decodePut(DBR.STRING, 1, sbytes("abc"), tgt("double"), true);
    expect(r).toMatchObject({ error: ECA.PUTFAIL });
    expect("message" in r && r.message).toContain("abc");
  });

  test("strings to string PVs; numbers formatted with PREC (default 6)", () => {
    expect(decodePut(DBR.STRING, 1, sbytes("hello"), tgt("string"), true)).toEqual({
      value: "hello",
    });
    expect(decodePut(DBR.STRING, 1, sbytes("µm"), tgt("string"), true)).toEqual({ value: "µm" });
    expect(decodePut(DBR.DOUBLE, 1, f64(Math.PI), tgt("string"), true)).toEqual({
      value: "3.141593",
    });
    expect(
      decodePut(DBR.DOUBLE, 1, f64(Math.PI), tgt("string", 1, { precision: 2 }), true),
    ).toEqual({ value: "3.14" });
    expect(decodePut(DBR.LONG, 1, bytes("0000002a 00000000"), tgt("string"), true)).toEqual({
      value: "42",
    });
    const full = new Uint8Array(40).fill(0x41);
    expect(decodePut(DBR.STRING, 1, full, tgt("string"), true)).toEqual({ value: "A".repeat(40) });
  });

  test("enum: state names, decimal indices, out of range rejected", () => {
    expect(decodePut(DBR.STRING, 1, sbytes("On"), enumT, true)).toEqual({ value: 1 });
    expect(decodePut(DBR.STRING, 1, sbytes("Fault"), enumT, true)).toEqual({ value: 2 });
    expect(decodePut(DBR.STRING, 1, sbytes("2"), enumT, true)).toEqual({ value: 2 });
    for (const bad of ["5", "On ", "on", "-1", " 1", "1x", "99999999"]) {
      expect([bad, decodePut(DBR.STRING, 1, sbytes(bad), enumT, true)]).toMatchObject([
        bad,
        { error: ECA.PUTFAIL },
      ]);
    }
    expect(decodePut(DBR.ENUM, 1, bytes("0001 000000000000"), enumT, true)).toEqual({ value: 1 });
    expect(decodePut(DBR.DOUBLE, 1, f64(1.7), enumT, true)).toEqual({ value: 1 });
    expect(decodePut(DBR.LONG, 1, bytes("00000003 00000000"), enumT, true)).toMatchObject({
      error: ECA.PUTFAIL,
    });
    expect(decodePut(DBR.SHORT, 1, bytes("ffff 000000000000"), enumT, true)).toMatchObject({
      error: ECA.PUTFAIL,
    });
    // Without states any u16 index is accepted.
    expect(decodePut(DBR.STRING, 1, sbytes("7"), tgt("enum"), true)).toEqual({ value: 7 });
    expect(decodePut(DBR.SHORT, 1, bytes("ffff 000000000000"), tgt("enum"), true)).toEqual({
      value: 65535,
    });
  });

  test("compound types: value part on WRITE, ECA_PUTFAIL on WRITE_NOTIFY", () => {
    const time = bytes("0000 0000 12345678 09abcdef 00000000 400c000000000000");
    expect(decodePut(DBR.TIME_DOUBLE, 1, time, tgt("double"), false)).toEqual({ value: 3.5 });
    expect(decodePut(DBR.TIME_DOUBLE, 1, time, tgt("double"), true)).toMatchObject({
      error: ECA.PUTFAIL,
    });
    const sts = new Uint8Array(48);
    sts.set(new TextEncoder().encode("On"), 4);
    expect(decodePut(DBR.STS_STRING, 1, sts, enumT, false)).toEqual({ value: 1 });
    const ctrlChar = new Uint8Array(24);
    ctrlChar[21] = 9;
    expect(decodePut(DBR.CTRL_CHAR, 1, ctrlChar, tgt("char"), false)).toEqual({ value: 9 });
  });

  test("arrays: typed arrays of the target kind, count clamped to the target", () => {
    expect(decodePut(DBR.DOUBLE, 5, f64(1, 2, 3, 4, 5), tgt("double", 3), true)).toEqual({
      value: new Float64Array([1, 2, 3]),
    });
    expect(decodePut(DBR.LONG, 2, bytes("00000001 fffffffe"), tgt("double", 10), true)).toEqual({
      value: new Float64Array([1, -2]),
    });
    expect(decodePut(DBR.DOUBLE, 2, f64(1.9, -1.9), tgt("long", 4), true)).toEqual({
      value: new Int32Array([1, -1]),
    });
    expect(decodePut(DBR.CHAR, 4, bytes("48 69 21 00 00000000"), tgt("char", 8), true)).toEqual({
      value: new Uint8Array([0x48, 0x69, 0x21, 0]),
    });
    expect(decodePut(DBR.DOUBLE, 1, f64(2), tgt("double", 4), true)).toEqual({
      value: new Float64Array([2]),
    });
    const two = new Uint8Array(80);
    two.set(new TextEncoder().encode("1.5"), 0);
    two.set(new TextEncoder().encode("-2"), 40);
    expect(decodePut(DBR.STRING, 2, two, tgt("double", 2), true)).toEqual({
      value: new Float64Array([1.5, -2]),
    });
  });

  test("bad type, count or payload: clear errors", () => {
    expect(decodePut(39, 1, f64(1), tgt("double"), true)).toMatchObject({ error: ECA.BADTYPE });
    expect(
      decodePut(DBR.PUT_ACKT, 1, bytes("0001 000000000000"), tgt("double"), true),
    ).toMatchObject({ error: ECA.PUTFAIL });
    expect(decodePut(DBR.CLASS_NAME, 1, new Uint8Array(40), tgt("string"), false)).toMatchObject({
      error: ECA.BADTYPE,
    });
    expect(decodePut(DBR.STSACK_STRING, 1, new Uint8Array(48), tgt("string"), false)).toMatchObject(
      { error: ECA.BADTYPE },
    );
    expect(decodePut(DBR.DOUBLE, 0, f64(1), tgt("double"), true)).toMatchObject({
      error: ECA.BADCOUNT,
    });
    expect(decodePut(DBR.DOUBLE, 2, f64(1), tgt("double", 2), true)).toMatchObject({
      error: ECA.BADCOUNT,
    });
    expect(decodePut(DBR.DOUBLE, 1, new Uint8Array(0), tgt("double"), true)).toMatchObject({
      error: ECA.BADCOUNT,
    });
    expect(decodePut(DBR.STRING, 1, new Uint8Array(0), tgt("string"), true)).toMatchObject({
      error: ECA.BADCOUNT,
    });
    expect(decodePut(DBR.TIME_DOUBLE, 1, f64(1, 2), tgt("double"), false)).toMatchObject({
      error: ECA.BADCOUNT,
    });
  });
});

describe("garbage never throws", () => {
  const kinds: PvKind[] = ["double", "long", "string", "enum", "char"];

  test("decodePut on random types, counts and payloads", () => {
    const rnd = prng(2024);
    for (let i = 0; i < 20000; i++) {
      const kind = kinds[Math.floor(rnd() * 5)]!;
      const count = kind === "string" || kind === "enum" ? 1 : 1 + Math.floor(rnd() * 50);
      const target = tgt(kind, count, kind === "enum" && rnd() < 0.5 ? { states: ["a", "b"] } : {});
      const payload = new Uint8Array(Math.floor(rnd() * 500));
      for (let k = 0; k < payload.length; k++) payload[k] = Math.floor(rnd() * 256);
      const type = Math.floor(rnd() * 42) - 1;
      const n = rnd() < 0.1 ? Math.floor(rnd() * 2 ** 32) : Math.floor(rnd() * 60);
      const r = decodePut(type, n, payload, target, rnd() < 0.5);
      if ("value" in r) {
        if (count === 1) expect(typeof r.value).toBe(kind === "string" ? "string" : "number");
        else expect(ArrayBuffer.isView(r.value) && r.value.length <= count).toBe(true);
      } else {
        expect(typeof r.message).toBe("string");
      }
    }
  });

  test("encodeDbr on random sources, types and counts", () => {
    const rnd = prng(77);
    for (let i = 0; i < 5000; i++) {
      const kind = kinds[Math.floor(rnd() * 5)]!;
      const arr = (kind === "double" || kind === "long" || kind === "char") && rnd() < 0.5;
      const n = Math.floor(rnd() * 20);
      const value: PvValue = arr
        ? kind === "double"
          ? new Float64Array(n).map(() => (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40))
          : kind === "long"
            ? new Int32Array(n).map(() => Math.floor(rnd() * 2 ** 32))
            : new Uint8Array(n).map(() => Math.floor(rnd() * 256))
        : kind === "string"
          ? String.fromCharCode(
              ...Array.from({ length: Math.floor(rnd() * 60) }, () => Math.floor(rnd() * 0x3000)),
            )
          : Math.floor(rnd() * 70000) * (rnd() < 0.5 ? 1 : 0.37);
      const s = src(kind, value, {
        count: arr ? 20 : 1,
        meta: {
          precision: Math.floor(rnd() * 18),
          states: kind === "enum" ? ["x", "y"] : undefined,
        },
        timestamp: { sec: Math.floor(rnd() * 2 ** 33), nsec: Math.floor(rnd() * 2e9) },
      });
      const type = Math.floor(rnd() * 42) - 1;
      const req = Math.floor(rnd() * 25);
      const r = encodeDbr(s, type, req);
      if ("payload" in r) {
        expect(r.payload.length % 8).toBe(0);
        // A fixed count is answered with that many elements (at most the PV's); count 0 with
        // the valid ones, 0 included (CLASS_NAME: the PV's element count).
        const valid = Math.min(s.length, s.count);
        const want =
          req === 0 ? (type === DBR.CLASS_NAME ? s.count : valid) : Math.min(req, s.count);
        expect(r.count).toBe(want);
      }
    }
  });
});
