/**
 * Fuzz: ≥ 100k random and mutated-valid messages over TCP and UDP (seeded; set IOCMNG_FUZZ_SEED to
 * replay a failure), while PVs come and go. Afterwards the server must still answer a normal get
 * through libca (pyepics), have released every circuit, and its memory must be back near the start.
 */
import { expect, test } from "bun:test";
import dgram from "node:dgram";
import { CMD } from "../../../src/ca/codec/constants.ts";
import { runPy, startCaServer } from "../../helpers/ca-harness.ts";
import { concat, eventBlock, f64, msg, nameBytes } from "../../helpers/ca-raw.ts";
import { prng } from "../codec/helpers.ts";

const SEED = Number(process.env.IOCMNG_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TCP_MESSAGES = 80_000;
const UDP_MESSAGES = 40_000;
const PER_CONNECTION = 2_000;
const PARALLEL = 4;

const NAMES = ["F:D", "F:L", "F:S", "F:E", "F:C", "F:W", "F:RO", "F:TMP", "F:NOPE"];
const VALID_CMDS = [0, 1, 2, 3, 4, 6, 8, 9, 10, 12, 15, 18, 19, 20, 21, 23];
const EXTREMES = [0, 1, 0xff, 0xffff, 0x10000, 0x7fffffff, 0xffffffff];

class Gen {
  constructor(private readonly r: () => number) {}
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)] as T;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  u32(): number {
    return this.r() < 0.3 ? this.pick(EXTREMES) : this.int(2 ** 32);
  }

  /** A well-formed request a libca client could send (SIDs are small circuit-local counters). */
  valid(): Uint8Array {
    const sid = 1 + this.int(8);
    const t = this.int(39);
    const cnt = this.pick([0, 1, 1, 1, 2, 10, 1000]);
    switch (this.int(12)) {
      case 0:
        return msg(CMD.CREATE_CHAN, 0, 0, this.int(100), 13, nameBytes(this.pick(NAMES)));
      case 1:
        return msg(CMD.READ_NOTIFY, t, cnt, sid, this.int(1000));
      case 2:
        return msg(CMD.READ, t, cnt, sid, this.int(1000));
      case 3:
        return msg(
          CMD.WRITE,
          this.pick([0, 1, 2, 3, 4, 5, 6, 13, 20, 34]),
          1,
          sid,
          0,
          f64(this.r() * 1e6),
        );
      case 4:
        return msg(
          CMD.WRITE_NOTIFY,
          this.int(7),
          1 + this.int(3),
          sid,
          this.int(1000),
          this.bytes(8 * (1 + this.int(3))),
        );
      case 5:
        return msg(CMD.EVENT_ADD, t, cnt, sid, this.int(50), eventBlock(this.int(16)));
      case 6:
        return msg(CMD.EVENT_CANCEL, t, cnt, sid, this.int(50));
      case 7:
        return msg(CMD.CLEAR_CHANNEL, 0, 0, sid, this.int(100));
      case 8:
        return msg(this.pick([CMD.EVENTS_OFF, CMD.EVENTS_ON, CMD.ECHO, CMD.READ_SYNC]), 0, 0, 0, 0);
      case 9:
        return msg(CMD.WRITE, 0, 1, sid, 0, nameBytes(String(this.r() * 100)));
      case 10:
        return msg(
          CMD.SEARCH,
          this.pick([5, 10]),
          13,
          this.int(100),
          this.int(100),
          nameBytes(this.pick(NAMES)),
        );
      default:
        return msg(CMD.VERSION, this.int(100), 13, 0, 0);
    }
  }

  /**
   * A valid message with a few bytes flipped, a field set to an extreme, or its payload cut.
   * Header command/size bytes are hit rarely: those mostly end the circuit, which stops the fuzzing
   * of everything behind them on that circuit.
   */
  mutated(): Uint8Array {
    const m = this.valid();
    const v = new DataView(m.buffer);
    switch (this.int(4)) {
      case 0:
        for (let k = 1 + this.int(3); k > 0; k--) {
          const at = this.r() < 0.95 ? 8 + this.int(m.length - 8) : this.int(m.length);
          m[at] = this.int(256);
        }
        return m;
      case 1:
        v.setUint32(8 + 4 * this.int(2), this.u32());
        return m;
      case 2:
        if (this.r() < 0.9) v.setUint16(6, this.pick(EXTREMES) & 0xffff);
        else v.setUint16(2 * this.int(4), this.pick(EXTREMES) & 0xffff);
        return m;
      default:
        return this.r() < 0.9 ? m : m.subarray(0, Math.max(16, m.length - 8 * this.int(3)));
    }
  }

  /** Random header fields: mostly known commands, mostly aligned sizes, sometimes extended. */
  random(): Uint8Array {
    const cmd = this.r() < 0.01 ? this.int(0x10000) : this.pick(VALID_CMDS);
    const len = this.r() < 0.99 ? 8 * this.int(9) : this.int(70);
    const extended = this.r() < 0.02;
    const hs = extended ? 24 : 16;
    const out = new Uint8Array(hs + len);
    const v = new DataView(out.buffer);
    v.setUint16(0, cmd);
    v.setUint16(4, this.r() < 0.98 ? this.int(40) : this.int(0x10000));
    v.setUint32(8, this.u32());
    v.setUint32(12, this.u32());
    if (extended) {
      v.setUint16(2, 0xffff);
      v.setUint32(16, this.r() < 0.5 ? len : this.u32());
      v.setUint32(20, this.u32());
    } else {
      v.setUint16(2, this.r() < 0.99 ? len : this.int(0x10000));
      v.setUint16(6, this.r() < 0.5 ? this.int(4) : this.int(0x10000));
    }
    out.set(this.bytes(len), hs);
    return out;
  }

  any(): Uint8Array {
    return this.r() < 0.5 ? this.mutated() : this.random();
  }
}

async function fuzzConnection(port: number, g: Gen, n: number): Promise<number> {
  let open = true;
  const sock = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: () => {},
      drain: () => {},
      close: () => {
        open = false;
      },
      error: () => {
        open = false;
      },
    },
  });
  // Opening like libca, with channels on every served name, so SIDs 1..8 mostly exist.
  const opening = [msg(CMD.VERSION, 0, 13, 0, 0)];
  NAMES.forEach((name, i) => {
    opening.push(msg(CMD.CREATE_CHAN, 0, 0, i, 13, nameBytes(name)));
  });
  sock.write(concat(opening));
  let sent = 0;
  while (sent < n && open) {
    const batch: Uint8Array[] = [];
    for (let i = 0; i < 50 && sent + i < n; i++) batch.push(g.any());
    const buf = concat(batch);
    let off = 0;
    while (off < buf.length && open) {
      const w = sock.write(buf, off, buf.length - off);
      if (w < 0) break;
      off += w;
      if (off < buf.length) await Bun.sleep(1);
    }
    sent += batch.length;
    await Bun.sleep(0); // let the server (same event loop) process the batch
  }
  sock.end();
  return sent;
}

test(`fuzz ≥100k messages over TCP and UDP (seed ${SEED})`, async () => {
  const h = await startCaServer();
  const reg = h.registry;
  reg.add({
    name: "F:D",
    kind: "double",
    writable: true,
    meta: { controlLow: -1e5, controlHigh: 1e5 },
  });
  reg.add({ name: "F:L", kind: "long", writable: true });
  reg.add({ name: "F:S", kind: "string", writable: true });
  reg.add({ name: "F:E", kind: "enum", writable: true, meta: { states: ["A", "B", "C"] } });
  reg.add({ name: "F:C", kind: "char", count: 256, writable: true });
  reg.add({ name: "F:W", kind: "double", count: 1000, writable: true }, async (v) => {
    if (typeof v === "object" && v.length > 500) throw new Error("too long");
  });
  reg.add({ name: "F:RO", kind: "double", initial: 7 });
  reg.add({ name: "F:OK", kind: "double", initial: 3.25 });

  Bun.gc(true);
  const rss0 = process.memoryUsage().rss;
  const g = new Gen(prng(SEED));

  // TCP: PARALLEL workers, each opening fresh circuits of PER_CONNECTION messages.
  // Circuits the server drops (as rsrv would) are replaced until it has parsed TCP_MESSAGES.
  let tcpSent = 0;
  let churn = 0;
  const worker = async () => {
    while (h.server.stats().requests < TCP_MESSAGES) {
      tcpSent += await fuzzConnection(h.port, g, PER_CONNECTION);
      // PVs come and go under load (SERVER_DISCONN paths).
      if (churn++ % 3 === 0) {
        if (reg.has("F:TMP")) reg.remove("F:TMP");
        else reg.add({ name: "F:TMP", kind: "long", writable: true });
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));

  // UDP: datagrams of 1..8 messages, VERSION first half of the time.
  const udp = await new Promise<dgram.Socket>((resolve) => {
    const s = dgram.createSocket("udp4");
    s.bind(0, "127.0.0.1", () => resolve(s));
  });
  udp.on("message", () => {});
  let udpSent = 0;
  while (udpSent < UDP_MESSAGES) {
    const parts: Uint8Array[] = [];
    if (g.int(2) === 0) parts.push(msg(CMD.VERSION, 1, 13, g.int(1000), 0));
    for (let k = 1 + g.int(8); k > 0; k--) {
      parts.push(g.int(2) === 0 ? msg(CMD.SEARCH, 5, 13, 1, 1, nameBytes(g.pick(NAMES))) : g.any());
    }
    udpSent += parts.length;
    udp.send(concat(parts), h.port, "127.0.0.1");
    if (udpSent % 400 < 8) await Bun.sleep(1); // stay under the socket buffer
  }
  const st = h.server.stats();
  console.log(`fuzz seed ${SEED}: sent tcp ${tcpSent} udp ${udpSent}; ${JSON.stringify(st)}`);
  expect(st.requests + udpSent).toBeGreaterThanOrEqual(100_000);
  expect(st.internalErrors).toBe(0);

  // Every fuzz circuit ends (closed by us or dropped by the server).
  for (let i = 0; i < 500 && h.server.stats().circuits > 0; i++) await Bun.sleep(20);
  expect(h.server.stats().circuits).toBe(0);

  // A normal client still works.
  const r = await runPy(
    h.port,
    `out([epics.caget("F:OK", timeout=10), epics.caget("F:RO", timeout=10)])`,
  );
  expect(r).toEqual([3.25, 7]);
  const udpStats = h.server.stats();
  expect(udpStats.searchDatagrams).toBeGreaterThan(0);
  udp.close();

  Bun.gc(true);
  const grownMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
  // Generous: the allocator keeps freed pages; a leak per message (×100k) would show far above this.
  console.log(`fuzz RSS growth ${grownMb.toFixed(1)} MB`);
  expect(grownMb).toBeLessThan(64);
  await h.stop();
}, 240_000);
