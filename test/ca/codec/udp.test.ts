import { describe, expect, test } from "bun:test";
import { CMD, parseDatagram } from "../../../src/ca/codec/index.ts";
import { bytes, prng } from "./helpers.ts";

// Client search datagram of docs/ca-protocol-facts.md, Worked examples: VERSION seq 1, SEARCH "ABC" with CID 7.
const search = bytes(`
  0000 0000 0001 000d 00000001 00000000
  0006 0008 0005 000d 00000007 00000007
  41424300 00000000`);

describe("parseDatagram", () => {
  test("splits the worked example's search datagram", () => {
    const { messages, error } = parseDatagram(search);
    expect(error).toBeUndefined();
    expect(messages.map((m) => m.header)).toEqual([
      { command: CMD.VERSION, payloadSize: 0, dataType: 1, count: 13, p1: 1, p2: 0 },
      { command: CMD.SEARCH, payloadSize: 8, dataType: 5, count: 13, p1: 7, p2: 7 },
    ]);
    expect(Array.from(messages[1]?.payload ?? [])).toEqual([0x41, 0x42, 0x43, 0, 0, 0, 0, 0]);
  });

  test("empty datagram: no messages, no error", () => {
    expect(parseDatagram(new Uint8Array(0))).toEqual({ messages: [] });
  });

  test("truncated header keeps the messages before it", () => {
    const r = parseDatagram(search.subarray(0, 20));
    expect(r.messages.length).toBe(1);
    expect(r.error).toContain("truncated header");
  });

  test("truncated payload keeps the messages before it", () => {
    const r = parseDatagram(search.subarray(0, 36));
    expect(r.messages.length).toBe(1);
    expect(r.error).toContain("truncated payload");
  });

  test("misaligned payload size stops parsing", () => {
    const bad = search.slice();
    bad[16 + 3] = 5;
    const r = parseDatagram(bad);
    expect(r.messages.length).toBe(1);
    expect(r.error).toContain("misaligned");
  });

  test("postsize 0xFFFF (extended form) is not accepted over UDP", () => {
    const bad = search.slice();
    bad[16 + 2] = 0xff;
    bad[16 + 3] = 0xff;
    expect(parseDatagram(bad).error).toBeDefined();
  });

  test("random garbage never throws and never returns payloads past the datagram", () => {
    const rnd = prng(4242);
    for (let i = 0; i < 5000; i++) {
      const d = new Uint8Array(Math.floor(rnd() * 200));
      for (let k = 0; k < d.length; k++) d[k] = rnd() < 0.3 ? 0 : Math.floor(rnd() * 256);
      const r = parseDatagram(d);
      let total = 0;
      for (const m of r.messages) total += 16 + m.payload.length;
      expect(total).toBeLessThanOrEqual(d.length);
    }
  });
});
