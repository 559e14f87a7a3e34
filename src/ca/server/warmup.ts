/**
 * CA warm-up at boot: runs the circuit hot paths of a connect storm (CREATE_CHAN, READ_NOTIFY,
 * EVENT_ADD + updates + EVENT_CANCEL, CLEAR_CHANNEL, circuit teardown) on synthetic traffic, so
 * that JSC has compiled them to optimised code before the first real client arrives.
 *
 * Why: right after a start every function runs in the interpreter and is compiled while the first
 * storm runs (~45 ms of compile work in the first 10,000-channel storm, ~28 ms in the second, ~7
 * ms in the third: docs/benchmarks.md), so the first storm after a restart, the one every client
 * of an IOC meets at once, was the slowest one. The warm-up does that work in the idle time while
 * the plugins are restored.
 *
 * What it touches: nothing shared. The circuits are real `Circuit`s on a socket stand-in that
 * drops what it is given (after reading the CREATE_CHAN replies for the server ids), behind a
 * host of their own: their own counters, a silent logger, no access policy, and a name index of
 * synthetic `Pv`s that are in no registry, so no client can find them, `CaServer.stats()` does not
 * change and nothing is left once it is done. It runs in slices of `sliceChannels` channels with
 * a macrotask between slices, so REST, CA and plugin restore are served meanwhile. The search
 * thread warms its own path (search-warmup.ts).
 */
import type { Logger } from "pino";
import type { AccessPolicy } from "../../pv/access.ts";
import { Pv } from "../../pv/pv.ts";
import { CA_MINOR_VERSION, CMD } from "../codec/constants.ts";
import { DBR } from "../codec/dbr-layout.ts";
import { concatMessages, encodeMessage } from "../codec/messages.ts";
import { MessageReader, READ } from "../codec/stream.ts";
import { Circuit } from "./circuit.ts";
import { CaConfigError, type CaServerConfig } from "./config.ts";
import { InUseCount, PvEntry } from "./fanout.ts";
import { FlushScheduler } from "./flush.ts";
import { CircuitHub, type CircuitSocketData, newCaCounters } from "./host.ts";
import { NameIndex } from "./names.ts";

/** How much synthetic traffic the warm-up runs. */
export interface WarmupOptions {
  /** Synthetic PVs, one channel each per round (default 2,000). */
  channels?: number;
  /** Circuits opened one after the other, each creating, reading and clearing every channel. */
  rounds?: number;
  /** Channels handled per slice before yielding to the event loop (default 250). */
  sliceChannels?: number;
  /** Checked between slices: true ends the warm-up early (the server is stopping). */
  cancelled?: () => boolean;
}

/** What a warm-up did and what it cost. */
export interface WarmupReport {
  rounds: number;
  channels: number;
  /** Wall time from start to end, yields included. */
  wallMs: number;
  /** Time spent in the slices themselves (main-thread time taken from other work). */
  busyMs: number;
  cancelled: boolean;
  /** Requests the synthetic circuits handled and monitor updates they sent (their own counters). */
  requests: number;
  updatesSent: number;
}

// 6 rounds of 2,000 channels ≈ 1.2 storms of 10,000. Measured (docs/benchmarks.md, "CA through
// the product path"): server CPU in the first storm after a restart 110 ms with 6 rounds, 140 ms
// with 12, 160 ms without (medians of 8 restarts, load 4.5–5.6); 12 rounds cost twice the boot
// time and were more often cut short by the first client.
const DEFAULTS = { channels: 2000, rounds: 6, sliceChannels: 250 };
const SUBSCRIBED = 200;
/**
 * READ_NOTIFYs sent as one chunk per round: their replies (24 bytes each) outgrow the circuit's 64
 * KiB send buffer, as a real storm's read burst does, so the buffer's growth is compiled too;
 * without it the optimised read path bailed out on every real burst and was recompiled.
 */
const READ_BURST = 3000;
const READ_BURST_CHUNK = READ_BURST * 16 + 4;
/** Channels of the primer circuit that runs every request kind once first (see primer()). */
const PRIMER_CHANNELS = 16;
const DBE_VALUE_ALARM = 5;
const textEncoder = new TextEncoder();

/**
 * Whether the product runs the warm-up: IOCMNG_CA_WARMUP unset or empty (on), 1/yes/true/on or
 * 0/no/false/off (any case). Anything else throws CaConfigError naming the variable.
 */
export function warmupEnabled(env: Record<string, string | undefined>): boolean {
  const v = (env.IOCMNG_CA_WARMUP ?? "").trim().toLowerCase();
  if (v === "" || ["1", "yes", "true", "on"].includes(v)) return true;
  if (["0", "no", "false", "off"].includes(v)) return false;
  throw new CaConfigError(
    `IOCMNG_CA_WARMUP=${JSON.stringify(env.IOCMNG_CA_WARMUP)}: expected yes/no, true/false, on/off or 1/0`,
  );
}

/**
 * Stands in for the circuit's TCP socket: takes every byte, and while `parsing` reads the
 * CREATE_CHAN replies to learn the server id of each client id.
 */
class SinkSocket {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 0;
  readonly data: CircuitSocketData = { circuit: null };
  parsing = false;
  readonly sidOf: number[] = [];
  private reader = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
  write(b: Uint8Array): number {
    if (!this.parsing) return b.length;
    const r = this.reader;
    r.push(b);
    for (let st = r.read(); st !== READ.NONE; st = r.read()) {
      if (st === READ.MESSAGE && r.header.command === CMD.CREATE_CHAN)
        this.sidOf[r.header.p1] = r.header.p2;
    }
    return b.length;
  }
  /** A new circuit: start parsing at a message boundary. */
  reset(): void {
    this.reader = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
    this.sidOf.length = 0;
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
}

function nameBytes(s: string): Uint8Array {
  return textEncoder.encode(`${s}\0`);
}

/**
 * Feeds `bytes` to the circuit in TCP-like chunks (some messages split across two). The chunks
 * are Buffers, as a Bun socket delivers them: code compiled on plain Uint8Arrays guards on their
 * type and is thrown away at the first real chunk.
 */
// Not a multiple of 8 (every message's size is), so chunk boundaries fall inside messages and the
// reader's own buffer is used as with real TCP chunks (16,000 never split one).
function feed(c: Circuit, bytes: Uint8Array, chunk = 16_004): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let o = 0; o < buf.length; o += chunk) c.onData(buf.subarray(o, o + chunk));
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/** The synthetic PVs and their server entries (in no registry), made in slices. */
async function syntheticPvs(
  n: number,
  slice: number,
  timed: (f: () => void) => void,
): Promise<{ pvs: Pv[]; index: NameIndex<PvEntry> }> {
  const index = new NameIndex<PvEntry>();
  const pvs: Pv[] = [];
  const inUse = new InUseCount();
  for (let from = 0; from < n; from += slice) {
    timed(() => {
      for (let i = from; i < Math.min(n, from + slice); i++) {
        const pv = new Pv({ name: `IOCMNG:WARMUP:D${i}`, kind: "double", initial: i });
        pvs.push(pv);
        index.set(pv.name, new PvEntry(pv, inUse));
      }
    });
    await yieldToLoop();
  }
  return { pvs, index };
}

/**
 * Runs the warm-up; resolves with what it did. A rejection can only be a bug here; the caller logs
 * it and the server works the same without the warm-up.
 */
export async function warmUpCircuits(
  config: CaServerConfig,
  logger: Logger,
  tcpPort: number,
  access: AccessPolicy | null,
  opts: WarmupOptions = {},
): Promise<WarmupReport> {
  const channels = opts.channels ?? DEFAULTS.channels;
  const rounds = opts.rounds ?? DEFAULTS.rounds;
  const slice = Math.max(1, opts.sliceChannels ?? DEFAULTS.sliceChannels);
  const cancelled = opts.cancelled ?? (() => false);
  const t0 = performance.now();
  let busy = 0;
  const timed = (f: () => void) => {
    const s = performance.now();
    f();
    busy += performance.now() - s;
  };
  // Nothing runs before the first yield: the server starts the warm-up right after REST listens,
  // and the first health check must not wait for the synthetic PVs (cold start).
  await yieldToLoop();
  const { pvs, index } = await syntheticPvs(channels, slice, timed);
  // The server's access policy is asked for rights only (the warm-up writes nothing, so nothing
  // is audited); its own counters, names and flushes keep the server's untouched.
  const host = new CircuitHub(
    config,
    logger.child({}, { level: "silent" }),
    newCaCounters(),
    access,
    index,
    new FlushScheduler<Circuit>(),
    () => {},
  );
  host.tcpPort = tcpPort;
  const sock = new SinkSocket();
  const creates: Uint8Array[] = [];
  for (let from = 0; from < channels; from += slice) {
    timed(() => {
      for (let cid = from; cid < Math.min(channels, from + slice); cid++) {
        const name = nameBytes((pvs[cid] as Pv).name);
        creates.push(encodeMessage(CMD.CREATE_CHAN, 0, 0, cid, CA_MINOR_VERSION, name));
      }
    });
    await yieldToLoop();
  }
  const hello = concatMessages([
    encodeMessage(CMD.VERSION, 0, CA_MINOR_VERSION, 0, 0),
    encodeMessage(CMD.HOST_NAME, 0, 0, 0, 0, nameBytes("warmup")),
    encodeMessage(CMD.CLIENT_NAME, 0, 0, 0, 0, nameBytes("iocmng")),
  ]);
  if (!cancelled()) {
    timed(() => primer(host, sock, pvs, hello, creates));
    await yieldToLoop();
  }
  let done = 0;
  for (; done < rounds && !cancelled(); done++) {
    sock.reset();
    const c = new Circuit(sock as unknown as ConstructorParameters<typeof Circuit>[0], host);
    // One phase = one kind of request for every channel, in slices.
    const phase = async (msg: (cid: number) => Uint8Array, n = channels) => {
      for (let from = 0; from < n && !cancelled(); from += slice) {
        const parts: Uint8Array[] = [];
        for (let cid = from; cid < Math.min(n, from + slice); cid++) parts.push(msg(cid));
        timed(() => feed(c, concatMessages(parts)));
        await yieldToLoop();
      }
    };
    timed(() => feed(c, hello));
    sock.parsing = true;
    await phase((cid) => creates[cid] as Uint8Array);
    sock.parsing = false;
    const sid = (cid: number) => sock.sidOf[cid] ?? 0;
    await phase((cid) => encodeMessage(CMD.READ_NOTIFY, DBR.DOUBLE, 1, sid(cid), cid));
    if (!cancelled()) {
      const burst: Uint8Array[] = [];
      for (let i = 0; i < READ_BURST; i++) {
        const cid = i % channels;
        burst.push(encodeMessage(CMD.READ_NOTIFY, DBR.DOUBLE, 1, sid(cid), cid));
      }
      timed(() => feed(c, concatMessages(burst), READ_BURST_CHUNK));
      await yieldToLoop();
    }
    await monitorPhase(c, pvs, sid, timed);
    // Half cleared one by one, the rest with the circuit (a client that exits).
    await phase((cid) => encodeMessage(CMD.CLEAR_CHANNEL, 0, 0, sid(cid), cid), channels / 2);
    timed(() => c.onClose());
    await yieldToLoop();
  }
  return {
    rounds: done,
    channels,
    wallMs: performance.now() - t0,
    busyMs: busy,
    cancelled: done < rounds,
    requests: host.counters.requests,
    updatesSent: host.counters.updatesSent,
  };
}

/**
 * Every kind of channel request on a few channels, once, before anything is compiled: JSC compiles
 * the request dispatch (`dispatch`, `runChannelRequest`) once it ran ~1,000 times, which the
 * rounds' first phase (CREATE_CHAN, READ_NOTIFY) reaches before any EVENT_ADD, EVENT_CANCEL or
 * CLEAR_CHANNEL ran; the code then treated those cases as never taken, bailed out when the monitor
 * and clear phases took them and was compiled again, which put off its top tier (FTL) to the first
 * real storms. Here every case has run while everything is still interpreted.
 */
function primer(
  host: CircuitHub,
  sock: SinkSocket,
  pvs: Pv[],
  hello: Uint8Array,
  creates: Uint8Array[],
): void {
  const n = Math.min(PRIMER_CHANNELS, pvs.length);
  sock.reset();
  const c = new Circuit(sock as unknown as ConstructorParameters<typeof Circuit>[0], host);
  sock.parsing = true;
  feed(c, concatMessages([hello, ...creates.slice(0, n)]));
  sock.parsing = false;
  const sid = (cid: number) => sock.sidOf[cid] ?? 0;
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint16(12, DBE_VALUE_ALARM);
  const parts: Uint8Array[] = [];
  for (let cid = 0; cid < n; cid++) {
    parts.push(encodeMessage(CMD.READ_NOTIFY, DBR.DOUBLE, 1, sid(cid), cid));
    parts.push(encodeMessage(CMD.EVENT_ADD, DBR.TIME_DOUBLE, 1, sid(cid), cid, mask));
  }
  feed(c, concatMessages(parts));
  for (let cid = 0; cid < n; cid++) pvs[cid]?.post(cid + 0.25);
  c.flush();
  parts.length = 0;
  for (let cid = 0; cid < n; cid++) {
    parts.push(encodeMessage(CMD.EVENT_CANCEL, DBR.TIME_DOUBLE, 1, sid(cid), cid));
    parts.push(encodeMessage(CMD.CLEAR_CHANNEL, 0, 0, sid(cid), cid));
  }
  feed(c, concatMessages(parts));
  c.onClose();
}

/** Subscriptions on the first PVs, three posted updates each (the fan-out path), cancelled. */
async function monitorPhase(
  c: Circuit,
  pvs: Pv[],
  sid: (cid: number) => number,
  timed: (f: () => void) => void,
): Promise<void> {
  const n = Math.min(SUBSCRIBED, pvs.length);
  const mask = new Uint8Array(16);
  new DataView(mask.buffer).setUint16(12, DBE_VALUE_ALARM);
  const adds: Uint8Array[] = [];
  const cancels: Uint8Array[] = [];
  for (let cid = 0; cid < n; cid++) {
    adds.push(encodeMessage(CMD.EVENT_ADD, DBR.TIME_DOUBLE, 1, sid(cid), cid, mask));
    cancels.push(encodeMessage(CMD.EVENT_CANCEL, DBR.TIME_DOUBLE, 1, sid(cid), cid));
  }
  timed(() => feed(c, concatMessages(adds)));
  for (let k = 1; k <= 3; k++) {
    timed(() => {
      for (let i = 0; i < n; i++) pvs[i]?.post(i + k * 0.5);
    });
    // Updates are flushed in a microtask, as the server's are.
    await yieldToLoop();
  }
  timed(() => feed(c, concatMessages(cancels)));
  await yieldToLoop();
}
