import { describe, expect, test } from "bun:test";
import {
  CMD,
  encodeMessage,
  MessageReader,
  READ,
  type ReaderItem,
} from "../../../src/ca/codec/index.ts";
import { concat, hex, prng } from "./helpers.ts";

const te = new TextEncoder();
const str = (s: string) => te.encode(`${s}\0`);

/** A client stream as libca sends it: VERSION, names, channel, get, put, monitor, echo. */
function clientStream(): Uint8Array {
  return concat([
    encodeMessage(CMD.VERSION, 0, 13, 0, 0),
    encodeMessage(CMD.CLIENT_NAME, 0, 0, 0, 0, str("operator")),
    encodeMessage(CMD.HOST_NAME, 0, 0, 0, 0, str("host-1.example")),
    encodeMessage(CMD.CREATE_CHAN, 0, 0, 1, 13, str("IOC:TEMP")),
    encodeMessage(CMD.READ_NOTIFY, 20, 1, 4, 9),
    encodeMessage(CMD.WRITE, 0, 1, 4, 1, str("12.5")),
    encodeMessage(CMD.WRITE_NOTIFY, 6, 2, 4, 10, new Uint8Array(16).fill(0x3f)),
    // count ≥ 0xFFFF forces the extended header while keeping the stream small.
    encodeMessage(
      CMD.EVENT_ADD,
      6,
      70000,
      4,
      2,
      new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0]),
      true,
    ),
    encodeMessage(CMD.ECHO, 0, 0, 0, 0),
    encodeMessage(CMD.EVENT_CANCEL, 6, 1, 4, 2),
  ]);
}

interface Seen {
  kind: string;
  cmd: number;
  count: number;
  extended: boolean;
  payload: string;
}

/** Feeds chunks into a reader like a server would (extended allowed once VERSION says ≥ 9). */
function run(chunks: Uint8Array[], maxPayload = 1 << 20): { seen: Seen[]; reader: MessageReader } {
  let minor = 0;
  const reader = new MessageReader({ maxPayload, extendedAllowed: () => minor >= 9 });
  const seen: Seen[] = [];
  const drain = () => {
    for (let it: ReaderItem | null = reader.next(); it !== null; it = reader.next()) {
      if (it.kind === "message") {
        if (it.header.command === CMD.VERSION) minor = it.header.count;
        // Payload views are only valid until the next push: copy now (as hex).
        seen.push({
          kind: "message",
          cmd: it.header.command,
          count: it.header.count,
          extended: it.extended,
          payload: hex(it.payload),
        });
      } else {
        seen.push({
          kind: it.error,
          cmd: it.header.command,
          count: it.header.count,
          extended: it.extended,
          payload: "",
        });
      }
    }
  };
  for (const c of chunks) {
    reader.push(c);
    drain();
  }
  return { seen, reader };
}

describe("MessageReader reassembly", () => {
  const stream = clientStream();
  const whole = run([stream]).seen;

  test("whole stream yields every message, the extended one included", () => {
    expect(whole.map((s) => s.cmd)).toEqual([0, 20, 21, 18, 15, 4, 19, 1, 23, 2]);
    expect(whole.every((s) => s.kind === "message")).toBe(true);
    const ev = whole[7];
    expect(ev?.extended).toBe(true);
    expect(ev?.count).toBe(70000);
    expect(whole[3]?.payload).toBe(
      hex(new Uint8Array([...te.encode("IOC:TEMP"), 0, 0, 0, 0, 0, 0, 0, 0])).slice(0, 32),
    );
  });

  test("split at every byte offset yields the same messages", () => {
    for (let i = 1; i < stream.length; i++) {
      const { seen, reader } = run([stream.slice(0, i), stream.slice(i)]);
      expect(seen).toEqual(whole);
      expect(reader.buffered).toBe(0);
    }
  });

  test("split at every pair of offsets (three chunks) yields the same messages", () => {
    for (let i = 1; i < stream.length; i += 3) {
      for (let j = i + 1; j < stream.length; j += 5) {
        expect(run([stream.slice(0, i), stream.slice(i, j), stream.slice(j)]).seen).toEqual(whole);
      }
    }
  });

  test("one byte at a time yields the same messages", () => {
    const chunks = Array.from(stream, (b) => new Uint8Array([b]));
    expect(run(chunks).seen).toEqual(whole);
  });

  test("without VERSION ≥ 9 the extended header is not recognised (0xFFFF is misaligned)", () => {
    const ext = encodeMessage(CMD.EVENT_ADD, 6, 70000, 4, 2, new Uint8Array(16), true);
    const { seen, reader } = run([concat([encodeMessage(CMD.VERSION, 0, 8, 0, 0), ext])]);
    expect(seen.map((s) => s.kind)).toEqual(["message", "misaligned"]);
    expect(reader.failed).toBe(true);
  });

  test("large extended message in random chunk sizes", () => {
    const big = new Uint8Array(200_000);
    for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
    const s = concat([
      encodeMessage(CMD.VERSION, 0, 13, 0, 0),
      encodeMessage(CMD.WRITE, 6, 25000, 4, 1, big, true),
      encodeMessage(CMD.ECHO, 0, 0, 0, 0),
    ]);
    const rnd = prng(7);
    const chunks: Uint8Array[] = [];
    for (let o = 0; o < s.length; ) {
      const n = 1 + Math.floor(rnd() * 9000);
      chunks.push(s.slice(o, o + n));
      o += n;
    }
    const { seen } = run(chunks);
    expect(seen.map((x) => x.cmd)).toEqual([0, 4, 23]);
    expect(seen[1]?.payload).toBe(hex(big));
    expect(seen[1]?.extended).toBe(true);
  });

  test("a message whole in one chunk is returned zero-copy", () => {
    const chunk = encodeMessage(CMD.ECHO, 0, 0, 0, 0, new Uint8Array(8).fill(9));
    const r = new MessageReader({ maxPayload: 100, extendedAllowed: () => true });
    r.push(chunk);
    const it = r.next();
    expect(it?.kind).toBe("message");
    if (it?.kind === "message") expect(it.payload.buffer).toBe(chunk.buffer);
  });
});

describe("MessageReader.read (allocation-free form)", () => {
  test("fills one reused header and points at the payload in place; next() items do not alias it", () => {
    const a = encodeMessage(CMD.CREATE_CHAN, 0, 0, 7, 13, str("A:B"));
    const b = encodeMessage(CMD.READ_NOTIFY, 6, 1, 3, 99);
    const chunk = concat([a, b, a]);
    const r = new MessageReader({ maxPayload: 100, extendedAllowed: () => true });
    r.push(chunk);
    const h = r.header;
    expect(r.read()).toBe(READ.MESSAGE);
    expect(r.header).toBe(h);
    expect({ ...h }).toEqual({
      command: CMD.CREATE_CHAN,
      payloadSize: 8,
      dataType: 0,
      count: 0,
      p1: 7,
      p2: 13,
    });
    expect(r.bytes).toBe(chunk);
    expect(r.payloadOffset).toBe(16);
    expect(hex(r.bytes.subarray(r.payloadOffset, r.payloadOffset + 4))).toBe(hex(str("A:B")));
    expect(r.read()).toBe(READ.MESSAGE);
    expect([h.command, h.dataType, h.count, h.p1, h.p2, h.payloadSize]).toEqual([
      15, 6, 1, 3, 99, 0,
    ]);
    // next() returns its own copies: an earlier item survives later reads.
    const item = r.next();
    expect(r.read()).toBe(READ.NONE);
    r.push(b);
    expect(r.next()?.header.command).toBe(CMD.READ_NOTIFY);
    expect(item?.header.command).toBe(CMD.CREATE_CHAN);
    expect(item?.header.p1).toBe(7);
  });
});

describe("MessageReader framing errors", () => {
  test("misaligned: messages before it are delivered, then the reader is dead", () => {
    const bad = new Uint8Array(16 + 8);
    new DataView(bad.buffer).setUint16(0, CMD.WRITE);
    new DataView(bad.buffer).setUint16(2, 5); // payload size 5: not a multiple of 8
    const s = concat([
      encodeMessage(CMD.VERSION, 0, 13, 0, 0),
      bad,
      encodeMessage(CMD.ECHO, 0, 0, 0, 0),
    ]);
    for (let i = 1; i < s.length; i++) {
      const { seen, reader } = run([s.slice(0, i), s.slice(i)]);
      expect(seen.map((x) => x.kind)).toEqual(["message", "misaligned"]);
      expect(reader.failed).toBe(true);
      reader.push(encodeMessage(CMD.ECHO, 0, 0, 0, 0));
      expect(reader.next()).toBeNull();
    }
  });

  test("oversized: reported once, its payload skipped without buffering, stream continues", () => {
    const huge = encodeMessage(CMD.WRITE, 6, 16, 4, 1, new Uint8Array(128).fill(0xee));
    const s = concat([
      huge,
      encodeMessage(CMD.ECHO, 0, 0, 0, 0),
      huge,
      encodeMessage(CMD.READ_SYNC, 0, 0, 0, 0),
    ]);
    for (let i = 1; i < s.length; i++) {
      const { seen } = run([s.slice(0, i), s.slice(i)], 64);
      expect(seen.map((x) => `${x.kind}:${x.cmd}`)).toEqual([
        "oversized:4",
        "message:23",
        "oversized:4",
        "message:10",
      ]);
    }
    // A 100 MB payload declared in an extended header is skipped while holding nothing.
    const r = new MessageReader({ maxPayload: 1024, extendedAllowed: () => true });
    const hdr = new Uint8Array(24);
    const v = new DataView(hdr.buffer);
    v.setUint16(0, CMD.WRITE);
    v.setUint16(2, 0xffff);
    v.setUint32(16, 100_000_000);
    v.setUint32(20, 12_500_000);
    r.push(hdr);
    expect(r.next()?.kind).toBe("error");
    const block = new Uint8Array(1 << 20);
    for (let sent = 0; sent < 100_000_000; sent += block.length) {
      r.push(block.subarray(0, Math.min(block.length, 100_000_000 - sent)));
      expect(r.buffered).toBe(0);
      expect(r.next()).toBeNull();
    }
    r.push(encodeMessage(CMD.ECHO, 0, 0, 0, 0));
    expect(r.next()?.kind).toBe("message");
  });
});

describe("MessageReader never throws on garbage", () => {
  test("random bytes in random chunks: no throw, bounded buffering", () => {
    const rnd = prng(12345);
    const max = 4096;
    for (let round = 0; round < 300; round++) {
      const r = new MessageReader({ maxPayload: max, extendedAllowed: () => rnd() < 0.5 });
      for (let k = 0; k < 20; k++) {
        const chunk = new Uint8Array(1 + Math.floor(rnd() * 300));
        for (let i = 0; i < chunk.length; i++) chunk[i] = Math.floor(rnd() * 256);
        r.push(chunk);
        while (r.next() !== null) {}
        expect(r.buffered).toBeLessThanOrEqual(max + 24 + chunk.length);
      }
    }
  });

  test("mutated valid streams: no throw, every message within the declared size", () => {
    const base = clientStream();
    const rnd = prng(99);
    for (let round = 0; round < 2000; round++) {
      const s = base.slice();
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) s[Math.floor(rnd() * s.length)] = Math.floor(rnd() * 256);
      const cut = Math.floor(rnd() * s.length);
      const r = new MessageReader({ maxPayload: 1 << 16, extendedAllowed: () => true });
      for (const c of [s.subarray(0, cut), s.subarray(cut)]) {
        r.push(c);
        for (let it = r.next(); it !== null; it = r.next()) {
          if (it.kind === "message") expect(it.payload.length).toBe(it.header.payloadSize);
        }
      }
    }
  });
});
