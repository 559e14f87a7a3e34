import { describe, expect, test } from "bun:test";
import {
  type CaHeader,
  encodeHeader,
  headerSizeFor,
  pad8,
  readHeader,
  readHeaderBytes,
  writeHeader,
  writeHeaderBytes,
} from "../../../src/ca/codec/index.ts";
import { bytes, h, hex, prng } from "./helpers.ts";

const view = (u: Uint8Array) => new DataView(u.buffer, u.byteOffset, u.byteLength);

describe("pad8 / headerSizeFor", () => {
  test("pad8 rounds up to multiples of 8", () => {
    expect([0, 1, 7, 8, 9, 15, 16, 40, 41].map(pad8)).toEqual([0, 8, 8, 8, 16, 16, 16, 40, 48]);
  });
  test("extended form from 0xFFFF padded bytes or count", () => {
    expect(headerSizeFor(0xfff8, 0xfffe)).toBe(16);
    expect(headerSizeFor(0xffff, 1)).toBe(24);
    expect(headerSizeFor(0x10000, 1)).toBe(24);
    expect(headerSizeFor(8, 0xffff)).toBe(24);
  });
});

describe("writeHeader / readHeader", () => {
  const std: CaHeader = { command: 15, payloadSize: 24, dataType: 20, count: 1, p1: 1, p2: 9 };

  test("standard header golden bytes (READ_NOTIFY reply of docs/ca-protocol-facts.md)", () => {
    expect(hex(encodeHeader(std, false))).toBe(h("000f 0018 0014 0001 00000001 00000009"));
  });

  test("extended header golden bytes and round trip", () => {
    const big: CaHeader = {
      command: 1,
      payloadSize: 8_000_000,
      dataType: 6,
      count: 1_000_000,
      p1: 1,
      p2: 0xfffffffe,
    };
    const b = encodeHeader(big, true);
    expect(hex(b)).toBe(h("0001 ffff 0006 0000 00000001 fffffffe 007a1200 000f4240"));
    expect(readHeader(view(b), 0, b.length, true)).toEqual({ header: big, headerSize: 24 });
  });

  test("extended needed but not allowed throws RangeError and writes nothing past the check", () => {
    const u = new Uint8Array(24);
    expect(() => writeHeader(view(u), 0, { ...std, payloadSize: 0x10000 }, false)).toThrow(
      RangeError,
    );
    expect(() => writeHeader(view(u), 0, { ...std, count: 0x10000 }, false)).toThrow(RangeError);
    expect(hex(u)).toBe("0".repeat(48));
  });

  test("p1/p2 are unsigned 32-bit on read", () => {
    const b = bytes("0000 0000 0000 0000 ffffffff 80000000");
    expect(readHeader(view(b), 0, 16, true)?.header).toMatchObject({
      p1: 0xffffffff,
      p2: 0x80000000,
    });
  });

  test("null when fewer than 16 bytes, or fewer than 24 for the extended form", () => {
    const b = encodeHeader({ ...std, payloadSize: 0x10000 }, true);
    expect(readHeader(view(b), 0, 15, true)).toBeNull();
    expect(readHeader(view(b), 0, 16, true)).toBeNull();
    expect(readHeader(view(b), 0, 23, true)).toBeNull();
    expect(readHeader(view(b), 0, 24, true)?.headerSize).toBe(24);
  });

  test("postsize 0xFFFF from a peer without extended support reads as a 16-byte header", () => {
    const b = bytes("0001 ffff 0006 0000 00000001 00000002");
    expect(readHeader(view(b), 0, 16, false)).toEqual({
      header: { command: 1, payloadSize: 0xffff, dataType: 6, count: 0, p1: 1, p2: 2 },
      headerSize: 16,
    });
  });

  test("reads at an offset", () => {
    const b = new Uint8Array(40);
    writeHeader(view(b), 8, std, false);
    expect(readHeader(view(b), 8, 32, false)?.header).toEqual(std);
  });
});

describe("Uint8Array variants", () => {
  test("writeHeaderBytes/readHeaderBytes agree with the DataView versions on random headers", () => {
    const rnd = prng(5);
    for (let i = 0; i < 5000; i++) {
      const r32 = () => Math.floor(rnd() * 2 ** 32);
      const small = rnd() < 0.5;
      const hd: CaHeader = {
        command: Math.floor(rnd() * 0x10000),
        payloadSize: small ? Math.floor(rnd() * 0xffff) : r32(),
        dataType: Math.floor(rnd() * 0x10000),
        count: small ? Math.floor(rnd() * 0xffff) : r32(),
        p1: r32(),
        p2: r32(),
      };
      const a = new Uint8Array(32);
      const b = new Uint8Array(32);
      const n = writeHeader(view(a), 4, hd, true);
      expect(writeHeaderBytes(b, 4, hd, true)).toBe(n);
      expect(hex(b)).toBe(hex(a));
      for (const ext of [true, false]) {
        expect(readHeaderBytes(b, 4, 28, ext)).toEqual(readHeader(view(b), 4, 28, ext));
        expect(readHeaderBytes(b, 4, 20, ext)).toEqual(readHeader(view(b), 4, 20, ext));
      }
    }
    expect(() =>
      writeHeaderBytes(
        new Uint8Array(24),
        0,
        { command: 0, payloadSize: 0x10000, dataType: 0, count: 0, p1: 0, p2: 0 },
        false,
      ),
    ).toThrow(RangeError);
  });
});
