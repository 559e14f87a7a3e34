/**
 * Byte-level protocol tests: exact replies, ECA codes, drops and flow control, checked with a raw
 * TCP/UDP client (libca hides most of these details; interop.test.ts covers libca itself).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import pino from "pino";
import { CMD, ECA } from "../../../src/ca/codec/constants.ts";
import type { CaHeader } from "../../../src/ca/codec/header.ts";
import { parseDatagram } from "../../../src/ca/codec/udp.ts";
import { CaServer } from "../../../src/ca/server/index.ts";
import { nextBeaconInterval } from "../../../src/ca/server/udp.ts";
import { type CaHarness, startCaServer, testLogger } from "../../helpers/ca-harness.ts";
import {
  eventBlock,
  f64,
  msg,
  nameBytes,
  RawCaClient,
  searchDatagram,
} from "../../helpers/ca-raw.ts";

let h: CaHarness;
beforeAll(async () => {
  h = await startCaServer();
  h.registry.add({ name: "R:RO", kind: "double", initial: 1.25 });
  h.registry.add({ name: "R:RW", kind: "double", writable: true, initial: 0 });
});
afterAll(async () => {
  await h.stop();
});

function headerOf(payload: Uint8Array): CaHeader {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    command: v.getUint16(0),
    payloadSize: v.getUint16(2),
    dataType: v.getUint16(4),
    count: v.getUint16(6),
    p1: v.getUint32(8),
    p2: v.getUint32(12),
  };
}
const f64At = (p: Uint8Array, off = 0) => new DataView(p.buffer, p.byteOffset).getFloat64(off);

describe("circuit basics", () => {
  test("VERSION arrives unprompted; rights then CREATE_CHAN reply; unknown name fails", async () => {
    const c = await RawCaClient.connect(h.port);
    const v = await c.next();
    expect(v.header).toEqual({ command: 0, payloadSize: 0, dataType: 0, count: 13, p1: 0, p2: 0 });
    c.send(
      msg(CMD.VERSION, 0, 13, 0, 0),
      msg(CMD.CREATE_CHAN, 0, 0, 5, 13, nameBytes("R:NOPE")),
      msg(CMD.CREATE_CHAN, 0, 0, 6, 13, nameBytes("R:RO")),
      msg(CMD.CREATE_CHAN, 0, 0, 7, 13, nameBytes("R:RW")),
    );
    const msgs = [await c.next(), await c.next(), await c.next(), await c.next(), await c.next()];
    expect(msgs.map((m) => [m.header.command, m.header.p1])).toEqual([
      [CMD.CREATE_CH_FAIL, 5],
      [CMD.ACCESS_RIGHTS, 6],
      [CMD.CREATE_CHAN, 6],
      [CMD.ACCESS_RIGHTS, 7],
      [CMD.CREATE_CHAN, 7],
    ]);
    expect(msgs[1]?.header.p2).toBe(1); // read-only
    expect(msgs[3]?.header.p2).toBe(3); // read + write
    expect(msgs[2]?.header.dataType).toBe(6); // DBR_DOUBLE
    expect(msgs[2]?.header.count).toBe(1);
    c.close();
  });

  test("READ_NOTIFY, READ, ECHO and READ_SYNC", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:RO", 1);
    c.send(msg(CMD.READ_NOTIFY, 6, 1, sid, 77), msg(CMD.READ, 6, 1, sid, 78));
    const rn = await c.next((m) => m.header.command === CMD.READ_NOTIFY);
    expect(rn.header.p1).toBe(ECA.NORMAL);
    expect(rn.header.p2).toBe(77);
    expect(f64At(rn.payload)).toBe(1.25);
    const rd = await c.next((m) => m.header.command === CMD.READ);
    expect(rd.header.p1).toBe(1); // CID, as rsrv
    expect(f64At(rd.payload)).toBe(1.25);
    c.send(msg(CMD.ECHO, 0, 0, 0, 0), msg(CMD.READ_SYNC, 0, 0, 0, 0));
    await c.next((m) => m.header.command === CMD.ECHO);
    await c.next((m) => m.header.command === CMD.READ_SYNC);
    c.close();
  });

  test("writes to a read-only PV: ERROR ECA_NOWTACCESS for WRITE, status for WRITE_NOTIFY", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:RO", 3);
    c.send(msg(CMD.WRITE, 6, 1, sid, 3, f64(9)), msg(CMD.WRITE_NOTIFY, 6, 1, sid, 44, f64(9)));
    const err = await c.next((m) => m.header.command === CMD.ERROR);
    expect(err.header.p1).toBe(3); // CID
    expect(err.header.p2).toBe(ECA.NOWTACCESS);
    const copied = headerOf(err.payload);
    expect(copied.command).toBe(CMD.WRITE);
    expect(copied.p1).toBe(sid);
    const wn = await c.next((m) => m.header.command === CMD.WRITE_NOTIFY);
    expect(wn.header.p1).toBe(ECA.NOWTACCESS);
    expect(wn.header.p2).toBe(44);
    expect(h.registry.get("R:RO")?.value).toBe(1.25);
    c.close();
  });

  test("WRITE_NOTIFY is answered only after the write handler settles", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let calls = 0;
    h.registry.add({ name: "R:GATED", kind: "double", writable: true }, async () => {
      calls++;
      await gate;
    });
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:GATED", 1);
    c.send(msg(CMD.WRITE_NOTIFY, 6, 1, sid, 9, f64(4.5)));
    // The handler has started (the ECHO round trip proves the request was processed) …
    const before = await c.sync();
    expect(calls).toBe(1);
    // … and no WRITE_NOTIFY reply came back yet.
    expect(before.filter((m) => m.header.command === CMD.WRITE_NOTIFY)).toEqual([]);
    release();
    const wn = await c.next((m) => m.header.command === CMD.WRITE_NOTIFY);
    expect(wn.header.p1).toBe(ECA.NORMAL);
    // The reply carries this request's type, count and ioid, although other requests (the ECHO)
    // were parsed while the handler was pending.
    expect([wn.header.dataType, wn.header.count, wn.header.p2]).toEqual([6, 1, 9]);
    expect(h.registry.get("R:GATED")?.value).toBe(4.5);
    c.close();
  });

  test("CLEAR_CHANNEL echoes the header and stops that channel's updates", async () => {
    const pv = h.registry.add({ name: "R:CLR", kind: "double" });
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:CLR", 11);
    c.send(msg(CMD.EVENT_ADD, 6, 1, sid, 1, eventBlock(1)));
    await c.next((m) => m.header.command === CMD.EVENT_ADD);
    c.send(msg(CMD.CLEAR_CHANNEL, 0, 0, sid, 11));
    const r = await c.next((m) => m.header.command === CMD.CLEAR_CHANNEL);
    expect([r.header.p1, r.header.p2]).toEqual([sid, 11]);
    pv.post(5);
    const after = await c.sync();
    expect(after.filter((m) => m.header.command === CMD.EVENT_ADD)).toEqual([]);
    expect(pv.listenerCount).toBe(0);
    c.close();
  });
});

describe("monitors and flow control", () => {
  test("EVENTS_OFF holds updates; EVENTS_ON delivers only the latest", async () => {
    const pv = h.registry.add({ name: "R:EV", kind: "double" });
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:EV", 1);
    c.send(msg(CMD.EVENT_ADD, 6, 1, sid, 21, eventBlock(1)));
    const first = await c.next((m) => m.header.command === CMD.EVENT_ADD);
    expect(first.header.p2).toBe(21);
    c.send(msg(CMD.EVENTS_OFF, 0, 0, 0, 0));
    await c.sync();
    for (let i = 1; i <= 100; i++) pv.post(i);
    const during = await c.sync();
    expect(during.filter((m) => m.header.command === CMD.EVENT_ADD)).toEqual([]);
    c.send(msg(CMD.EVENTS_ON, 0, 0, 0, 0));
    const after = (await c.sync()).filter((m) => m.header.command === CMD.EVENT_ADD);
    expect(after.length).toBe(1);
    expect(f64At(after[0]?.payload as Uint8Array)).toBe(100);
    // Cancel: acknowledged by an EVENT_ADD with no payload and the original type/count.
    c.send(msg(CMD.EVENT_CANCEL, 6, 1, sid, 21));
    const ack = await c.next((m) => m.header.command === CMD.EVENT_ADD);
    expect(ack.header).toEqual({
      command: 1,
      payloadSize: 0,
      dataType: 6,
      count: 1,
      p1: sid,
      p2: 21,
    });
    c.close();
  });

  test("a stalled client gets coalesced updates, bounded memory, and does not delay others", async () => {
    const n = 100_000; // 800 kB per update
    const pv = h.registry.add({ name: "R:BIGMON", kind: "double", count: n });
    const slow = await RawCaClient.handshake(h.port);
    const { sid } = await slow.createChannel("R:BIGMON", 1);
    // 20 subscriptions on the same array: every post is 20 × 800 kB for this one circuit.
    for (let id = 0; id < 20; id++) slow.send(msg(CMD.EVENT_ADD, 6, n, sid, id, eventBlock(1)));
    for (let id = 0; id < 20; id++) await slow.next((m) => m.header.command === CMD.EVENT_ADD);
    slow.pause();
    let maxQueued = 0;
    const coalescedBefore = h.server.stats().updatesCoalesced;
    const arr = new Float64Array(n);
    for (let i = 1; i <= 300; i++) {
      arr.fill(i);
      pv.post(arr.slice());
      maxQueued = Math.max(maxQueued, h.server.stats().queuedBytes);
      await Bun.sleep(0); // let the circuit flush between posts, like a real periodic task
    }
    // 300 × 20 × 800 kB = 4.8 GB if queued; coalescing keeps the backlog to a few socket loads.
    expect(maxQueued).toBeLessThan(32 * 2 ** 20);
    const fast = await RawCaClient.handshake(h.port);
    const ch = await fast.createChannel("R:RO", 1);
    fast.send(msg(CMD.READ_NOTIFY, 6, 1, ch.sid, 1));
    const r = await fast.next((m) => m.header.command === CMD.READ_NOTIFY);
    expect(f64At(r.payload)).toBe(1.25);
    expect(h.server.stats().updatesCoalesced).toBeGreaterThan(coalescedBefore);
    slow.resume();
    // The latest value always arrives.
    let last = 0;
    let updates = 0;
    while (last !== 300) {
      const m = await slow.next((x) => x.header.command === CMD.EVENT_ADD && x.header.p2 === 7);
      updates++;
      last = f64At(m.payload);
    }
    expect(updates).toBeLessThan(300);
    slow.close();
    fast.close();
  }, 60_000);

  test("subscribers with different types and counts on one PV each get their own encoding", async () => {
    const pv = h.registry.add({
      name: "R:MULTI",
      kind: "double",
      count: 20,
      meta: { precision: 2 },
    });
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:MULTI", 1);
    // DBR_DOUBLE with counts 1..12 (more than the cache keeps), DBR_STRING count 1, TIME_DOUBLE 0.
    for (let k = 1; k <= 12; k++) c.send(msg(CMD.EVENT_ADD, 6, k, sid, k, eventBlock(1)));
    c.send(msg(CMD.EVENT_ADD, 0, 1, sid, 100, eventBlock(1)));
    c.send(msg(CMD.EVENT_ADD, 20, 0, sid, 101, eventBlock(1)));
    await c.sync();
    pv.post(Float64Array.from({ length: 15 }, (_, i) => i + 0.25));
    const got = (await c.sync()).filter((m) => m.header.command === CMD.EVENT_ADD);
    expect(got.length).toBe(14);
    for (const m of got) {
      const id = m.header.p2;
      if (id <= 12) {
        expect(m.header.count).toBe(id);
        expect(f64At(m.payload, 8 * (id - 1))).toBe(id - 1 + 0.25);
      } else if (id === 100) {
        expect(new TextDecoder().decode(m.payload.subarray(0, 4))).toBe("0.25");
      } else {
        expect(m.header.count).toBe(15); // count 0 = the 15 valid elements
        expect(f64At(m.payload, 16 + 8 * 14)).toBe(14.25);
      }
    }
    c.close();
  });

  test("unknown subscription cancel gets ECA_BADMONID; circuit stays usable", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:RO", 1);
    c.send(msg(CMD.EVENT_CANCEL, 6, 1, sid, 999));
    const e = await c.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.BADMONID);
    await c.sync();
    expect(c.isOpen).toBe(true);
    c.close();
  });
});

describe("hostile input", () => {
  test("misaligned message: ERROR ECA_INTERNAL then the circuit is closed", async () => {
    const c = await RawCaClient.handshake(h.port);
    const bad = new Uint8Array(16 + 8);
    const v = new DataView(bad.buffer);
    v.setUint16(0, CMD.ECHO);
    v.setUint16(2, 3); // payload size not a multiple of 8
    c.send(bad);
    const e = await c.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.INTERNAL);
    await c.closed;
  });

  test("invalid command and invalid DBR type drop the circuit; others are unaffected", async () => {
    const other = await RawCaClient.handshake(h.port);
    const a = await RawCaClient.handshake(h.port);
    a.send(msg(13, 0, 0, 0, 0));
    await a.closed;
    const b = await RawCaClient.handshake(h.port);
    const { sid } = await b.createChannel("R:RO", 1);
    b.send(msg(CMD.READ_NOTIFY, 99, 1, sid, 1));
    await b.closed;
    await other.sync();
    expect(other.isOpen).toBe(true);
    other.close();
  });

  test("oversized payload is skipped with ECA_TOLARGE; the circuit continues", async () => {
    const s = await startCaServer({ config: { maxPayloadBytes: 1024 } });
    s.registry.add({ name: "O:X", kind: "double", writable: true });
    const c = await RawCaClient.handshake(s.port);
    const { sid } = await c.createChannel("O:X", 1);
    c.send(msg(CMD.WRITE, 6, 1000, sid, 1, f64(...new Array(1000).fill(1))));
    const e = await c.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.TOLARGE);
    c.send(msg(CMD.WRITE, 6, 1, sid, 1, f64(2)));
    await c.sync();
    expect(s.registry.get("O:X")?.value).toBe(2);
    c.close();
    await s.stop();
  });

  test("bounds: channels per circuit, circuits per client, name length", async () => {
    // Every refusal is logged, once, with the peer's address.
    const logs: { msg?: string; peer?: string }[] = [];
    const logger = pino(
      { level: "warn" },
      { write: (line: string) => logs.push(JSON.parse(line)) },
    );
    const s = await startCaServer({
      config: { maxChannelsPerCircuit: 2, maxCircuitsPerClient: 2, maxNameLength: 16 },
      logger,
    });
    s.registry.add({ name: "B:1", kind: "long" });
    s.registry.add({ name: "B:2", kind: "long" });
    s.registry.add({ name: "B:3", kind: "long" });
    s.registry.add({ name: "B:LONG_NAME_OVER_16", kind: "long" });
    const c = await RawCaClient.handshake(s.port);
    await c.createChannel("B:1", 1);
    await c.createChannel("B:2", 2);
    for (const cid of [3, 5]) {
      c.send(msg(CMD.CREATE_CHAN, 0, 0, cid, 13, nameBytes("B:3")));
      expect((await c.next((m) => m.header.p1 === cid)).header.command).toBe(CMD.CREATE_CH_FAIL);
    }
    const c2 = await RawCaClient.handshake(s.port);
    for (const cid of [4, 6]) {
      c2.send(msg(CMD.CREATE_CHAN, 0, 0, cid, 13, nameBytes("B:LONG_NAME_OVER_16")));
      expect((await c2.next((m) => m.header.p1 === cid)).header.command).toBe(CMD.CREATE_CH_FAIL);
    }
    for (let i = 0; i < 2; i++) {
      const c3 = await RawCaClient.connect(s.port);
      await c3.closed; // third (and fourth) circuit from 127.0.0.1 refused
    }
    expect(s.server.stats().circuitsRefused).toBe(2);
    const warned = (re: RegExp) => logs.filter((l) => re.test(l.msg ?? ""));
    for (const re of [/channel limit 2/, /PV name of 19 bytes/, /too many circuits/]) {
      const hits = warned(re);
      expect(hits.length).toBe(1);
      expect(hits[0]?.peer).toStartWith("127.0.0.1");
    }
    c.close();
    c2.close();
    await s.stop();
  });

  test("VERSION rules: minor < 4 gets ECA_DEFUNCT and a drop; priority > 99 drops", async () => {
    const old = await RawCaClient.connect(h.port);
    old.send(msg(CMD.VERSION, 0, 3, 0, 0));
    const e = await old.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.DEFUNCT);
    await old.closed;
    const prio = await RawCaClient.connect(h.port);
    prio.send(msg(CMD.VERSION, 100, 13, 0, 0));
    await prio.closed;
  });

  test("bad subscription requests: mask without DBE bits, count above the channel's", async () => {
    const c = await RawCaClient.handshake(h.port);
    const { sid } = await c.createChannel("R:RO", 9);
    c.send(msg(CMD.EVENT_ADD, 6, 1, sid, 1, eventBlock(0x100)));
    const e1 = await c.next((m) => m.header.command === CMD.ERROR);
    expect([e1.header.p1, e1.header.p2]).toEqual([9, ECA.BADMASK]);
    c.send(msg(CMD.EVENT_ADD, 6, 2, sid, 2, eventBlock(1)), msg(CMD.READ_NOTIFY, 6, 5, sid, 3));
    const e2 = await c.next((m) => m.header.command === CMD.ERROR);
    const e3 = await c.next((m) => m.header.command === CMD.ERROR);
    expect([e2.header.p2, e3.header.p2]).toEqual([ECA.BADCOUNT, ECA.BADCOUNT]);
    expect(headerOf(e3.payload).p2).toBe(3); // libca routes it to the IOID of the get
    const after = await c.sync();
    expect(after.filter((m) => m.header.command === CMD.EVENT_ADD)).toEqual([]);
    expect(c.isOpen).toBe(true);
    c.close();
  });

  test("EPICS_CA_MAX_ARRAY_BYTES (auto off): bigger replies get ECA_TOLARGE", async () => {
    const s = await startCaServer({ config: { maxArrayBytes: 16384 } });
    s.registry.add({ name: "MA:W", kind: "double", count: 4096 });
    const c = await RawCaClient.handshake(s.port);
    const { sid } = await c.createChannel("MA:W", 1);
    c.send(msg(CMD.READ_NOTIFY, 6, 4096, sid, 5), msg(CMD.READ_NOTIFY, 6, 100, sid, 6));
    const e = await c.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.TOLARGE);
    const ok = await c.next((m) => m.header.command === CMD.READ_NOTIFY);
    expect([ok.header.p1, ok.header.p2, ok.header.count]).toEqual([ECA.NORMAL, 6, 100]);
    c.send(msg(CMD.EVENT_ADD, 6, 0, sid, 1, eventBlock(1)));
    expect((await c.next((m) => m.header.command === CMD.ERROR)).header.p2).toBe(ECA.TOLARGE);
    c.close();
    await s.stop();
  });

  test("CLIENT_NAME without NUL drops the circuit; after a channel it is refused", async () => {
    const c = await RawCaClient.handshake(h.port);
    await c.createChannel("R:RO", 1);
    c.send(msg(CMD.CLIENT_NAME, 0, 0, 0, 0, nameBytes("late")));
    const e = await c.next((m) => m.header.command === CMD.ERROR);
    expect(e.header.p2).toBe(ECA.INTERNAL);
    await c.sync();
    c.send(msg(CMD.HOST_NAME, 0, 0, 0, 0, new Uint8Array([65, 65, 65, 65, 65, 65, 65, 65])));
    await c.closed;
  });
});

test("PV removal sends SERVER_DISCONN; re-adding lets the channel be created again", async () => {
  h.registry.add({ name: "R:GONE", kind: "long", initial: 1 });
  const c = await RawCaClient.handshake(h.port);
  const { sid } = await c.createChannel("R:GONE", 42);
  c.send(msg(CMD.EVENT_ADD, 5, 1, sid, 1, eventBlock(5)));
  await c.next((m) => m.header.command === CMD.EVENT_ADD);
  h.registry.remove("R:GONE");
  const d = await c.next((m) => m.header.command === CMD.SERVER_DISCONN);
  expect(d.header.p1).toBe(42);
  c.send(msg(CMD.CREATE_CHAN, 0, 0, 43, 13, nameBytes("R:GONE")));
  expect((await c.next((m) => m.header.p1 === 43)).header.command).toBe(CMD.CREATE_CH_FAIL);
  h.registry.add({ name: "R:GONE", kind: "long", initial: 7 });
  const again = await c.createChannel("R:GONE", 44);
  c.send(msg(CMD.READ_NOTIFY, 5, 1, again.sid, 2));
  const r = await c.next((m) => m.header.command === CMD.READ_NOTIFY);
  expect(new DataView(r.payload.buffer).getInt32(0)).toBe(7);
  c.close();
});

test("PV removal disconnects every remaining channel on it, on every circuit, exactly once", async () => {
  h.registry.add({ name: "R:SHARED", kind: "double", initial: 2 });
  const a = await RawCaClient.handshake(h.port);
  const b = await RawCaClient.handshake(h.port);
  await a.createChannel("R:SHARED", 1);
  const mid = await a.createChannel("R:SHARED", 2);
  await a.createChannel("R:SHARED", 3);
  await b.createChannel("R:SHARED", 4);
  // Clear one of them first: it must not get a SERVER_DISCONN.
  a.send(msg(CMD.CLEAR_CHANNEL, 0, 0, mid.sid, 2));
  await a.next((m) => m.header.command === CMD.CLEAR_CHANNEL);
  const inUse = h.server.stats().pvsInUse;
  h.registry.remove("R:SHARED");
  // Removal queues the SERVER_DISCONNs synchronously, so they precede the ECHO replies.
  const disconns = (msgs: { header: CaHeader }[]) =>
    msgs.filter((m) => m.header.command === CMD.SERVER_DISCONN).map((m) => m.header.p1);
  expect(disconns(await a.sync()).sort()).toEqual([1, 3]);
  expect(disconns(await b.sync())).toEqual([4]);
  expect(h.server.stats().pvsInUse).toBe(inUse - 1);
  a.close();
  b.close();
});

describe("UDP", () => {
  function udpClient(): Promise<dgram.Socket> {
    return new Promise((resolve) => {
      const s = dgram.createSocket("udp4");
      s.bind(0, "127.0.0.1", () => resolve(s));
    });
  }

  test("search replies: VERSION echo + port/0xFFFFFFFF/id + minor; silence for unknown names", async () => {
    const s = await udpClient();
    const replies: Uint8Array[] = [];
    let wake: () => void = () => {};
    s.on("message", (m) => {
      replies.push(new Uint8Array(m));
      wake();
    });
    // Unknown-only first: the first reply must then be the one for seq 2.
    s.send(searchDatagram(1, [["R:NOPE", 1]]), h.port, "127.0.0.1");
    s.send(
      searchDatagram(2, [
        ["R:NOPE", 2],
        ["R:RO", 3],
        ["R:RW", 4],
      ]),
      h.port,
      "127.0.0.1",
    );
    while (replies.length === 0) await new Promise<void>((r) => (wake = r));
    const { messages } = parseDatagram(replies[0] as Uint8Array);
    expect(messages.map((m) => m.header)).toEqual([
      { command: 0, payloadSize: 0, dataType: 1, count: 13, p1: 2, p2: 0 },
      { command: 6, payloadSize: 8, dataType: h.server.tcpPort, count: 0, p1: 0xffffffff, p2: 3 },
      { command: 6, payloadSize: 8, dataType: h.server.tcpPort, count: 0, p1: 0xffffffff, p2: 4 },
    ]);
    expect(messages[1]?.payload[1]).toBe(13);
    // Garbage does not stop the responder.
    s.send(new Uint8Array([1, 2, 3]), h.port, "127.0.0.1");
    s.send(searchDatagram(3, [["R:RO", 5]]), h.port, "127.0.0.1");
    while (replies.length < 2) await new Promise<void>((r) => (wake = r));
    expect(parseDatagram(replies[1] as Uint8Array).messages[0]?.header.p1).toBe(3);
    s.close();
  });

  test("beacon intervals start at 20 ms and double up to the beacon period", () => {
    const seq: number[] = [0.02];
    while (seq.length < 14) seq.push(nextBeaconInterval(seq.at(-1) as number, 15));
    expect(seq.map((x) => Math.round(x * 1000))).toEqual([
      20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 15000, 15000, 15000, 15000,
    ]);
  });

  test("beacons go to the configured address with the TCP port and increasing IDs", async () => {
    const sink = await udpClient();
    const beacons: CaHeader[] = [];
    let wake: () => void = () => {};
    sink.on("message", (m) => {
      const d = parseDatagram(new Uint8Array(m));
      for (const x of d.messages) beacons.push(x.header);
      wake();
    });
    const s = await startCaServer({
      config: { beaconAddrs: [`127.0.0.1:${sink.address().port}`], beaconPeriod: 0.1 },
    });
    while (beacons.length < 4) await new Promise<void>((r) => (wake = r));
    expect(beacons.slice(0, 4).map((b) => [b.command, b.dataType, b.count, b.p1])).toEqual([
      [13, 13, s.port, 0],
      [13, 13, s.port, 1],
      [13, 13, s.port, 2],
      [13, 13, s.port, 3],
    ]);
    await s.stop();
    sink.close();
  });

  test("two servers share the UDP port; the second takes a random TCP port", async () => {
    const a = await startCaServer();
    const b = new CaServer({
      registry: a.registry,
      logger: testLogger(),
      config: { serverPort: a.port, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
    });
    await b.start();
    expect(b.udpPort).toBe(a.port);
    expect(b.tcpPort).not.toBe(a.port);
    await b.stop();
    await a.stop();
  });

  test("ignored source addresses get no reply", async () => {
    const s = await startCaServer({ config: { ignoreAddrs: ["127.0.0.1"] } });
    s.registry.add({ name: "IG:X", kind: "long" });
    const ignored = await udpClient();
    const other = await new Promise<dgram.Socket>((resolve) => {
      const x = dgram.createSocket("udp4");
      x.bind(0, "127.0.0.2", () => resolve(x)); // all of 127/8 is loopback on Linux
    });
    let got = 0;
    ignored.on("message", () => got++);
    const reply = new Promise<void>((r) => other.on("message", () => r()));
    // Same server socket, sent in order: had the first been answered, it would be counted first.
    ignored.send(searchDatagram(1, [["IG:X", 1]]), s.port, "127.0.0.1");
    other.send(searchDatagram(2, [["IG:X", 2]]), s.port, "127.0.0.1");
    await reply;
    expect(s.server.stats().searchReplies).toBe(1);
    expect(got).toBe(0);
    ignored.close();
    other.close();
    await s.stop();
  });
});
