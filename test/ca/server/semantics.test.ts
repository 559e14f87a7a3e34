/**
 * Channel Access semantics clients rely on (issue 11), at the byte level:
 * - a READ_NOTIFY or EVENT_ADD sent in the same TCP segment right after a WRITE sees the written
 *   value, for every kind of PV, also when the PV's write handler answers later (a plugin);
 * - a 10,000-write burst is never refused: the circuit stops reading while writes are pending
 *   (backpressure), other circuits keep being served, and the channel ends at the last value;
 * - count-0 ("dynamic") reads and monitors of an empty array answer count 0 with rsrv's sizes.
 * The write handlers here are async like a plugin's; a gate holds them to make the burst
 * deterministic. No timing is asserted.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CMD, ECA } from "../../../src/ca/codec/constants.ts";
import { DBR } from "../../../src/ca/codec/dbr-layout.ts";
import type { PvValue } from "../../../src/pv/types.ts";
import { type CaHarness, startCaServer } from "../../helpers/ca-harness.ts";
import { concat, eventBlock, f64, msg, RawCaClient } from "../../helpers/ca-raw.ts";

let h: CaHarness;
// The burst PV's handler waits on this gate while it is closed.
let gate: Promise<void> = Promise.resolve();
const burstSeen: number[] = [];

beforeAll(async () => {
  h = await startCaServer({ config: { maxPendingWritesPerCircuit: 64 } });
  const r = h.registry;
  // A plugin-like handler: the answer comes later (another task), then the PV takes the value.
  const later = async (_v: PvValue) => {
    await Bun.sleep(1);
  };
  r.add({ name: "S:DBL", kind: "double", writable: true, initial: 109 }, later);
  r.add({ name: "S:LNG", kind: "long", writable: true, initial: 5 }, later);
  r.add({ name: "S:STR", kind: "string", writable: true, initial: "old" }, later);
  const states = ["zero", "one", "two"];
  r.add({ name: "S:ENM", kind: "enum", writable: true, meta: { states } }, later);
  r.add({ name: "S:CHR", kind: "char", writable: true, initial: 1 }, later);
  r.add({ name: "S:DARR", kind: "double", count: 10, writable: true }, later);
  r.add({ name: "S:LARR", kind: "long", count: 5, writable: true }, later);
  r.add({ name: "S:CARR", kind: "char", count: 16, writable: true }, later);
  r.add({ name: "S:NOH", kind: "double", writable: true }); // no handler: completes at once
  r.add({ name: "S:BURST", kind: "double", writable: true }, async (v) => {
    await gate;
    burstSeen.push(v as number);
  });
  r.add({ name: "S:OTHER", kind: "double", initial: 7 });
  r.add({ name: "S:EMPTY", kind: "double", count: 10, writable: true });
  r.add({ name: "S:TEXT", kind: "string", initial: "abc" });
});

afterAll(async () => {
  await h.stop();
});

const be32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v);
  return b;
};
const be16 = (v: number) => new Uint8Array([v >> 8, v & 0xff]);
const str40 = (s: string) => {
  const b = new Uint8Array(40);
  b.set(new TextEncoder().encode(s));
  return b;
};
const pad8 = (b: Uint8Array) => {
  const out = new Uint8Array((b.length + 7) & ~7);
  out.set(b);
  return out;
};

/** A write of one value per case: the DBR type, count and payload; rounds write different values. */
interface Case {
  pv: string;
  type: number;
  writes: Array<{ count: number; payload: Uint8Array }>;
}

const cases: Case[] = [
  {
    pv: "S:DBL",
    type: DBR.DOUBLE,
    writes: [11, 22, 33].map((v) => ({ count: 1, payload: f64(v) })),
  },
  { pv: "S:LNG", type: DBR.LONG, writes: [-7, 8, 9].map((v) => ({ count: 1, payload: be32(v) })) },
  {
    pv: "S:STR",
    type: DBR.STRING,
    writes: ["a", "bb", "ccc"].map((v) => ({ count: 1, payload: str40(v) })),
  },
  { pv: "S:ENM", type: DBR.ENUM, writes: [2, 1, 0].map((v) => ({ count: 1, payload: be16(v) })) },
  {
    pv: "S:CHR",
    type: DBR.CHAR,
    writes: [3, 200, 4].map((v) => ({ count: 1, payload: new Uint8Array([v]) })),
  },
  {
    pv: "S:DARR",
    type: DBR.DOUBLE,
    writes: [f64(1, 2, 3), f64(4), f64(5, 6, 7, 8, 9, 10, 11, 12, 13, 14)].map((p) => ({
      count: p.length / 8,
      payload: p,
    })),
  },
  {
    pv: "S:LARR",
    type: DBR.LONG,
    writes: [[1, 2], [3, 4, 5, 6, 7], [8]].map((a) => ({
      count: a.length,
      payload: concat(a.map(be32)),
    })),
  },
  {
    pv: "S:CARR",
    type: DBR.CHAR,
    writes: ["hi", "hello", "x"].map((s) => {
      const p = new TextEncoder().encode(`${s}\0`);
      return { count: p.length, payload: p };
    }),
  },
  {
    pv: "S:NOH",
    type: DBR.DOUBLE,
    writes: [1.5, 2.5, 3.5].map((v) => ({ count: 1, payload: f64(v) })),
  },
];

describe("a read or subscription right after a write sees it", () => {
  test("WRITE + READ_NOTIFY (count 0) in one segment, every kind of PV, three rounds", async () => {
    const c = await RawCaClient.handshake(h.port);
    let ioid = 1000;
    for (const [i, k] of cases.entries()) {
      const { sid } = await c.createChannel(k.pv, 100 + i);
      for (const w of k.writes) {
        const id = ++ioid;
        c.send(
          msg(CMD.WRITE, k.type, w.count, sid, 100 + i, w.payload),
          msg(CMD.READ_NOTIFY, k.type, 0, sid, id),
        );
        const r = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === id);
        const label = `${k.pv} ${Array.from(w.payload.subarray(0, 8))}`;
        expect([label, r.header.p1, r.header.count]).toEqual([label, ECA.NORMAL, w.count]);
        expect([label, Array.from(r.payload)]).toEqual([label, Array.from(pad8(w.payload))]);
      }
    }
    const errors = (await c.sync()).filter((m) => m.header.command === CMD.ERROR);
    expect(errors).toEqual([]);
    c.close();
  });

  test("WRITE_NOTIFY, WRITE, READ_NOTIFY in one segment: the completion comes first, the read sees the last write", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("S:DBL", 1);
    c.send(
      msg(CMD.WRITE_NOTIFY, DBR.DOUBLE, 1, sid, 50, f64(41)),
      msg(CMD.WRITE, DBR.DOUBLE, 1, sid, 1, f64(42)),
      msg(CMD.READ_NOTIFY, DBR.DOUBLE, 1, sid, 51),
    );
    const r = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 51);
    expect(new DataView(r.payload.buffer).getFloat64(0)).toBe(42);
    // Answers keep request order: the WRITE_NOTIFY completion was received before the read reply.
    const done = await c.next(
      (m) => m.header.command === CMD.WRITE_NOTIFY && m.header.p2 === 50,
      1,
    );
    expect(done.header.p1).toBe(ECA.NORMAL);
    c.close();
  });

  test("EVENT_ADD right after a WRITE: the first update carries the written value", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("S:LNG", 1);
    for (const v of [1234567, -3, 77]) {
      const sub = 500 + v;
      c.send(
        msg(CMD.WRITE, DBR.LONG, 1, sid, 1, be32(v)),
        msg(CMD.EVENT_ADD, DBR.TIME_LONG, 1, sid, sub, eventBlock(5)),
      );
      const u = await c.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === sub);
      expect(new DataView(u.payload.buffer).getInt32(12)).toBe(v);
      c.send(msg(CMD.EVENT_CANCEL, DBR.TIME_LONG, 1, sid, sub));
    }
    c.close();
  });
});

describe("backpressure instead of refusals", () => {
  test("10,000 writes back to back: none refused, other circuits served meanwhile, last value wins", async () => {
    let open!: () => void;
    gate = new Promise<void>((r) => {
      open = r;
    });
    const a = await RawCaClient.handshake(h.port);
    const b = await RawCaClient.handshake(h.port);
    const { sid } = await a.createChannel("S:BURST", 1);
    const other = await b.createChannel("S:OTHER", 2);
    const n = 10_000;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < n; i++) parts.push(msg(CMD.WRITE, DBR.DOUBLE, 1, sid, 1, f64(i)));
    parts.push(msg(CMD.READ_NOTIFY, DBR.DOUBLE, 1, sid, 77));
    const sending = a.sendAll(concat(parts));
    // While the burst's first write is held at the gate, another circuit is answered.
    b.send(msg(CMD.READ_NOTIFY, DBR.DOUBLE, 1, other.sid, 9));
    const rb = await b.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 9);
    expect(new DataView(rb.payload.buffer).getFloat64(0)).toBe(7);
    expect(burstSeen.length).toBe(0);
    open();
    await sending;
    const r = await a.next(
      (m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 77,
      120_000,
    );
    expect(new DataView(r.payload.buffer).getFloat64(0)).toBe(n - 1);
    expect(a.received.filter((m) => m.header.command === CMD.ERROR)).toEqual([]);
    // Every write reached the handler, in order.
    expect(burstSeen.length).toBe(n);
    expect(burstSeen.every((v, i) => v === i)).toBe(true);
    a.close();
    b.close();
  }, 180_000);
});

describe("count 0 on an empty array (dynamic size)", () => {
  test("reads answer count 0 with the metadata part only, like softIoc", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("S:EMPTY", 1);
    const got: Array<[number, number, number]> = [];
    let id = 0;
    for (const t of [DBR.DOUBLE, DBR.STRING, DBR.TIME_DOUBLE, DBR.CTRL_DOUBLE, DBR.LONG]) {
      c.send(msg(CMD.READ_NOTIFY, t, 0, sid, ++id));
      const r = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === id);
      got.push([r.header.p1, r.header.count, r.header.payloadSize]);
    }
    // softIoc 7.0.8.1, waveform NELM 10 NORD 0: DOUBLE 0 bytes, TIME_DOUBLE 16, CTRL_DOUBLE 80.
    expect(got).toEqual([
      [ECA.NORMAL, 0, 0],
      [ECA.NORMAL, 0, 0],
      [ECA.NORMAL, 0, 16],
      [ECA.NORMAL, 0, 80],
      [ECA.NORMAL, 0, 0],
    ]);
    c.send(msg(CMD.READ_NOTIFY, DBR.CLASS_NAME, 0, sid, 99));
    const cls = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 99);
    expect([cls.header.count, cls.header.payloadSize]).toEqual([10, 400]);
    c.close();
  });

  test("monitors at count 0 follow the array from empty to filled and back", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("S:EMPTY", 1);
    c.send(msg(CMD.EVENT_ADD, DBR.TIME_DOUBLE, 0, sid, 5, eventBlock(1)));
    const first = await c.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 5);
    expect([first.header.p1, first.header.count, first.header.payloadSize]).toEqual([
      ECA.NORMAL,
      0,
      16,
    ]);
    c.send(msg(CMD.WRITE, DBR.DOUBLE, 2, sid, 1, f64(1.5, 2.5)));
    const filled = await c.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 5);
    expect([filled.header.count, filled.header.payloadSize]).toEqual([2, 32]);
    h.registry.get("S:EMPTY")?.post(new Float64Array(0));
    const again = await c.next((m) => m.header.command === CMD.EVENT_ADD && m.header.p2 === 5);
    expect([again.header.count, again.header.payloadSize]).toEqual([0, 16]);
    c.close();
  });

  test("a count-0 read whose conversion fails answers ECA_GETFAIL, count 0, zeroed metadata", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("S:TEXT", 1);
    c.send(
      msg(CMD.READ_NOTIFY, DBR.DOUBLE, 0, sid, 1),
      msg(CMD.READ_NOTIFY, DBR.TIME_DOUBLE, 0, sid, 2),
    );
    const plain = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 1);
    const time = await c.next((m) => m.header.command === CMD.READ_NOTIFY && m.header.p2 === 2);
    expect([plain.header.p1, plain.header.count, plain.header.payloadSize]).toEqual([
      ECA.GETFAIL,
      0,
      0,
    ]);
    expect([time.header.p1, time.header.count, Array.from(time.payload)]).toEqual([
      ECA.GETFAIL,
      0,
      Array(16).fill(0),
    ]);
    c.close();
  });
});
