/**
 * The codec against the byte-exact captures (test/pva/fixtures, recorded between pvxs 1.5.2's
 * clients and softIocPVX): every message decodes completely and agrees with the independent
 * decoder's reading; what a server sends re-encodes to the same bytes.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BitSet,
  Cmd,
  decodeBitsAndPartial,
  decodeHeader,
  decodeSearch,
  decodeType,
  decodeValue,
  encodeBeacon,
  encodePartial,
  encodeSearchResponse,
  encodeServerValidation,
  encodeType,
  encodeValue,
  Framer,
  HEADER_SIZE,
  leafMask,
  PvaDecodeError,
  parsePvRequest,
  Reader,
  scalar,
  scalarArray,
  selectionMask,
  splitDatagram,
  struct,
  TypeCache,
  TypeCode,
  Writer,
} from "../../src/pva/codec/index.ts";
import { Dissector, flatten, hexToBytes } from "../helpers/pva-dissect.ts";

const DIR = join(import.meta.dir, "fixtures");

interface CapMsg {
  dir: "c2s" | "s2c";
  proto: "tcp" | "udp";
  hex: string;
  conn: number;
  decoded: { header: { command: string }; body?: Record<string, unknown> };
}
interface Capture {
  messages: CapMsg[];
  local_fanout?: CapMsg[];
  beacons_seen?: CapMsg[];
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();
// The captures write NaN alarm limits as a bare NaN (Python's json), which JSON.parse refuses.
const load = (f: string) =>
  JSON.parse(readFileSync(join(DIR, f), "utf8").replace(/\bNaN\b/g, '"NaN"')) as Capture;

/** Keys our dissector produces whose values must equal the capture's decoded body. */
function compare(ours: Record<string, unknown>, theirs: Record<string, unknown>, where: string) {
  for (const [k, v] of Object.entries(ours)) {
    if (k === "overrun_bits" || k === "type") continue;
    if (!(k in theirs)) continue;
    let expected = theirs[k];
    if (k === "pvRequest" || k === "argument" || k === "result" || k === "auth_data") {
      expected = JSON.parse(JSON.stringify(expected));
    }
    expect({ where, k, v: normalise(v) }).toEqual({ where, k, v: normalise(expected) });
  }
}

function normalise(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v === "number" && Number.isNaN(v)) return "NaN";
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}

describe("captures decode completely and agree with the independent decoder", () => {
  for (const f of files) {
    test(f, () => {
      const cap = load(f);
      const byConn = new Map<number, Dissector>();
      const all = [...cap.messages, ...(cap.local_fanout ?? []), ...(cap.beacons_seen ?? [])];
      expect(all.length).toBeGreaterThan(0);
      for (const [i, m] of all.entries()) {
        const d = byConn.get(m.conn) ?? new Dissector();
        byConn.set(m.conn, d);
        const out = d.dissect(hexToBytes(m.hex), m.dir);
        expect({ i, leftover: out.leftover }).toEqual({ i, leftover: 0 });
        compare(out.body, m.decoded.body ?? {}, `${f}#${i}`);
        if (out.body.fields)
          expect(Object.keys(out.body.fields as object).length).toBeGreaterThan(0);
      }
    });
  }
});

describe("framer", () => {
  const cap = load("10-get-double-full.json");
  const s2c = cap.messages.filter((m) => m.dir === "s2c" && m.proto === "tcp");
  const stream = Buffer.concat(s2c.map((m) => hexToBytes(m.hex)));

  test("splits a stream fed byte by byte into the captured messages", () => {
    const f = new Framer(1 << 20);
    const got = [];
    for (const b of stream) got.push(...f.push(Uint8Array.of(b)));
    expect(got.length).toBe(s2c.length);
    expect(got[0]?.control).toBe(true);
    expect(got.map((m) => m.command)).toEqual(s2c.map((m) => hexToBytes(m.hex)[3] ?? -1));
    expect(f.buffered).toBe(0);
  });

  test("joins segmented messages and rejects broken runs", () => {
    const body = Uint8Array.from({ length: 20 }, (_, i) => i);
    const seg = (flags: number, part: Uint8Array) => {
      const b = new Uint8Array(8 + part.length);
      b.set([0xca, 2, flags, Cmd.GET, part.length, 0, 0, 0]);
      b.set(part, 8);
      return b;
    };
    const f = new Framer(1024);
    const msgs = f.push(
      Buffer.concat([
        seg(0x10, body.subarray(0, 5)),
        seg(0x30, body.subarray(5, 12)),
        seg(0x20, body.subarray(12)),
      ]),
    );
    expect(msgs.length).toBe(1);
    expect(Array.from(msgs[0]?.payload ?? [])).toEqual(Array.from(body));
    expect(() => new Framer(1024).push(seg(0x20, body))).toThrow(PvaDecodeError);
    expect(() => new Framer(1024).push(Buffer.concat([seg(0x10, body), seg(0x00, body)]))).toThrow(
      PvaDecodeError,
    );
    expect(() => new Framer(10).push(seg(0, body))).toThrow(/exceeds/);
    expect(() => new Framer(1024).push(Uint8Array.of(0xcb, 2, 0, 0, 0, 0, 0, 0))).toThrow(/magic/);
  });

  test("reads each message's size in its own byte order", () => {
    const le = Uint8Array.of(0xca, 2, 0x00, 2, 1, 0, 0, 0, 0xaa);
    const be = Uint8Array.of(0xca, 2, 0x80, 2, 0, 0, 0, 1, 0xbb);
    const msgs = new Framer(64).push(Buffer.concat([le, be]));
    expect(msgs.map((m) => [m.le, m.payload[0]])).toEqual([
      [true, 0xaa],
      [false, 0xbb],
    ]);
  });
});

describe("server messages re-encode to the captured bytes", () => {
  test("SEARCH_RESPONSE (big-endian, UDP) and BEACON", () => {
    const cap = load("01-udp-search-found.json");
    const reply = hexToBytes(cap.messages[1]?.hex ?? "");
    const req = cap.messages[0] as CapMsg;
    const reqBytes = hexToBytes(req.hex);
    const s = decodeSearch(new Reader(reqBytes, false, HEADER_SIZE));
    const w = new Writer(64, false);
    encodeSearchResponse(w, {
      guid: reply.subarray(8, 20),
      seq: s.seq,
      addr: "0.0.0.0",
      port: new DataView(reply.buffer).getUint16(8 + 12 + 4 + 16, false),
      protocol: "tcp",
      found: true,
      ids: s.channels.map((c) => c.id),
    });
    expect(Buffer.from(w.bytes()).toString("hex")).toBe(Buffer.from(reply).toString("hex"));

    const bcap = load("00-beacon.json");
    const beacon = hexToBytes(bcap.messages[0]?.hex ?? "");
    const bw = new Writer(64, false);
    encodeBeacon(bw, {
      guid: beacon.subarray(8, 20),
      flags: 0,
      seq: 0,
      change: 2,
      addr: "0.0.0.0",
      port: new DataView(beacon.buffer).getUint16(8 + 16 + 16, false),
      protocol: "tcp",
    });
    expect(Buffer.from(bw.bytes()).toString("hex")).toBe(bcap.messages[0]?.hex ?? "");
  });

  test("CONNECTION_VALIDATION and the NTScalar type description", () => {
    const cap = load("10-get-double-full.json");
    const w = new Writer(64, true);
    encodeServerValidation(w, {
      bufferSize: 0x10000,
      registryMax: 0x7fff,
      methods: ["anonymous", "ca"],
    });
    expect(Buffer.from(w.bytes()).toString("hex")).toBe(cap.messages[4]?.hex ?? "");

    // The INIT reply's type: decode then re-encode gives the same bytes.
    const init = hexToBytes(cap.messages[10]?.hex ?? "");
    const r = new Reader(init, true, HEADER_SIZE + 4 + 1 + 1);
    const t = decodeType(r, null);
    expect(r.remaining).toBe(0);
    const tw = new Writer();
    encodeType(tw, t);
    expect(Buffer.from(tw.bytes()).toString("hex")).toBe(
      Buffer.from(init.subarray(14)).toString("hex"),
    );
  });

  test("GET data re-encodes from the decoded partial value", () => {
    const cap = load("10-get-double-full.json");
    const init = hexToBytes(cap.messages[10]?.hex ?? "");
    const t = decodeType(new Reader(init, true, 14), null);
    if (!t) throw new Error("no type");
    const data = hexToBytes(cap.messages[12]?.hex ?? "");
    const r = new Reader(data, true, 14);
    const { bits, value } = decodeBitsAndPartial(r, t, null);
    expect(flatten(value).value).toBe(1.5);
    const w = new Writer();
    bits.encode(w);
    encodePartial(w, t, value, bits);
    expect(Buffer.from(w.bytes()).toString("hex")).toBe(
      Buffer.from(data.subarray(14)).toString("hex"),
    );
  });
});

describe("primitives", () => {
  test("the writer grows across every kind of write", () => {
    for (const le of [true, false]) {
      const w = new Writer(1, le);
      for (let i = 0; i < 50; i++) {
        w.u8(i)
          .u16(i)
          .u32(i)
          .i64(i)
          .f64(i + 0.5)
          .raw(Uint8Array.of(i, i))
          .string(`s${i}`);
      }
      const r = new Reader(w.bytes(), le);
      for (let i = 0; i < 50; i++) {
        expect([r.u8(), r.u16(), r.u32(), r.i64(), r.f64(), ...r.raw(2), r.string()]).toEqual([
          i,
          i,
          i,
          i,
          i + 0.5,
          i,
          i,
          `s${i}`,
        ]);
      }
    }
  });

  test("64-bit integers, signed and unsigned, match a DataView in both byte orders", () => {
    // Safe integers go out as two 32-bit halves, the rest through BigInt: both must give the bytes
    // DataView's BigInt writes give, including negative numbers and the halves' boundaries.
    const signed = [0, 1, -1, 2 ** 31, -(2 ** 31), 2 ** 32, -(2 ** 32) - 1, 1_796_443_902, -7.9];
    const big = [2 ** 53 - 1, -(2 ** 53) + 1, 2 ** 60, -(2 ** 62)];
    for (const le of [true, false]) {
      for (const v of [...signed, ...big]) {
        const w = new Writer(8, le).i64(v);
        const ref = new DataView(new ArrayBuffer(8));
        ref.setBigInt64(0, BigInt(Math.trunc(v)), le);
        expect([...w.bytes()]).toEqual([...new Uint8Array(ref.buffer)]);
        if (Number.isSafeInteger(Math.trunc(v)))
          expect(new Reader(w.bytes(), le).i64()).toBe(Math.trunc(v));
      }
      for (const v of [0, 1, 2 ** 32 + 5, 2 ** 53 - 1, 2 ** 63, -5, Number.NaN]) {
        const w = new Writer(8, le).u64(v);
        const ref = new DataView(new ArrayBuffer(8));
        ref.setBigUint64(0, BigInt(Number.isFinite(v) && v > 0 ? Math.trunc(v) : 0), le);
        expect([...w.bytes()]).toEqual([...new Uint8Array(ref.buffer)]);
      }
    }
  });

  test("strings: ASCII, non-ASCII after ASCII, and both Size forms", () => {
    for (const s of [
      "a",
      "Default",
      "dégrée µs",
      "abc\u00e9",
      "x".repeat(253),
      "y".repeat(254),
      `${"z".repeat(300)}é`,
    ]) {
      const w = new Writer(4, true).u8(7).string(s).u8(9);
      const bytes = new TextEncoder().encode(s);
      const r = new Reader(w.bytes(), true);
      expect(r.u8()).toBe(7);
      expect(r.string()).toBe(s);
      expect(r.u8()).toBe(9);
      // The Size form follows the UTF-8 length: one byte below 0xFE, else 0xFE + int32.
      expect(w.bytes()[1]).toBe(Math.min(bytes.length, 0xfe));
      expect(w.pos).toBe(2 + bytes.length + (bytes.length < 0xfe ? 1 : 5));
    }
  });

  test("bitsets in both byte orders", () => {
    for (const le of [true, false]) {
      const b = BitSet.of(1, 3, 4, 5, 7, 8, 9, 63, 64, 70);
      const w = new Writer(16, le);
      b.encode(w);
      const back = BitSet.decode(new Reader(w.bytes(), le));
      expect(back.toArray()).toEqual([1, 3, 4, 5, 7, 8, 9, 63, 64, 70]);
    }
    const w = new Writer();
    new BitSet().encode(w);
    expect(Array.from(w.bytes())).toEqual([0]);
  });

  test("sizes: 1-, 5- and 9-byte forms, null", () => {
    const w = new Writer(16, false);
    w.size(253).size(254).size(260).size(-1);
    const r = new Reader(w.bytes(), false);
    expect([r.size(), r.size(), r.size(), r.size()]).toEqual([253, 254, 260, -1]);
    const nine = Uint8Array.of(0xfe, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 0);
    expect(new Reader(nine, false).size()).toBe(256);
  });

  test("introspection cache: 0xFD defines, 0xFE reuses, unknown key fails", () => {
    const t = struct("x", [
      ["a", scalar(TypeCode.INT32)],
      ["b", scalarArray(TypeCode.FLOAT64)],
    ]);
    const w = new Writer();
    w.u8(0xfd).u16(7);
    encodeType(w, t);
    w.u8(0xfe).u16(7);
    const cache = new TypeCache();
    const r = new Reader(w.bytes(), true);
    const a = decodeType(r, cache);
    const b = decodeType(r, cache);
    expect(a?.members?.map((m) => m.name)).toEqual(["a", "b"]);
    expect(b).toBe(a);
    expect(() => decodeType(new Reader(Uint8Array.of(0xfe, 9, 0), true), cache)).toThrow(
      PvaDecodeError,
    );
  });

  test("deeply nested or truncated types and values fail cleanly", () => {
    const w = new Writer();
    for (let i = 0; i < 100; i++) w.u8(0x80).string("").size(1).string("a");
    w.u8(0x22);
    expect(() => decodeType(new Reader(w.bytes(), true), new TypeCache())).toThrow(/deep/);
    const t = struct("", [["v", scalarArray(TypeCode.FLOAT64)]]);
    const vw = new Writer();
    encodeValue(vw, t, { v: new Float64Array([1, 2, 3]) });
    const bytes = vw.bytes();
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeValue(new Reader(bytes.subarray(0, n), true), t, null)).toThrow(
        PvaDecodeError,
      );
    }
    // A count far beyond the bytes present is refused before any allocation.
    expect(() =>
      decodeValue(new Reader(Uint8Array.of(0xfe, 0xff, 0xff, 0xff, 0x0f), true), t, null),
    ).toThrow(/exceeds/);
  });

  test("pvRequest field selection and options", () => {
    const cap = load("42-monitor-double-pipeline.json");
    const m = hexToBytes(cap.messages[9]?.hex ?? "");
    const r = new Reader(m, true, HEADER_SIZE + 9);
    const t = decodeType(r, null);
    const req = parsePvRequest(t, decodeValue(r, t as never, null));
    expect(req).toEqual({ fields: [], options: { pipeline: "true", queueSize: "4" } });
    expect(r.u32()).toBe(4);

    const init = hexToBytes(load("10-get-double-full.json").messages[10]?.hex ?? "");
    const nt = decodeType(new Reader(init, true, 14), null);
    if (!nt) throw new Error("no type");
    const sel = selectionMask(nt, ["value", "alarm", "nosuch"]);
    expect(sel?.and(leafMask(nt)).toArray()).toEqual([1, 3, 4, 5]);
    expect(selectionMask(nt, ["nosuchfield"])).toBeNull();
    expect(selectionMask(nt, ["display.units"])?.toArray()).toEqual([14]);
  });

  test("datagram splitting: ORIGIN_TAG + SEARCH", () => {
    const cap = load("01-udp-search-found.json");
    const fan = cap.local_fanout ?? [];
    const dgram = Buffer.concat(fan.map((m) => hexToBytes(m.hex)));
    const msgs = splitDatagram(dgram);
    expect(msgs.map((m) => m.command)).toEqual([Cmd.ORIGIN_TAG, Cmd.SEARCH]);
    expect(decodeHeader(dgram).le).toBe(false);
    expect(() => splitDatagram(dgram.subarray(0, dgram.length - 1))).toThrow(PvaDecodeError);
  });
});
