/**
 * pvAccess warm-up: runs a connection's hot paths (validation, CREATE_CHANNEL, GET INIT and EXEC,
 * MONITOR INIT/START and updates, ECHO) on synthetic traffic, so that JSC has compiled them to
 * optimised code before real clients depend on them — the PVA counterpart of the CA warm-up
 * (src/ca/server/warmup.ts).
 *
 * Why: JSC compiles the GET path in the background while the first ~15,000 GETs after a start run
 * (28 FTL compiles, 190 ms of compiler-thread CPU in one run, docs/pva.md §Scheduling). Those
 * compiler threads compete with the clients for the CPUs, and the GETs meanwhile run slower code:
 * with only 1,000 warm-up GETs the benchmark's p99 was 0.47–0.56 ms against 0.20–0.25 ms after
 * 15,000 (docs/benchmarks.md).
 *
 * What it touches: nothing shared. The connection is a real `Connection` on a socket stand-in that
 * takes every byte, behind a host of its own (own counters, no access policy, no RPC, a silent
 * logger) serving one synthetic PV that is in no registry: no client can find it and
 * `PvaServer.stats()` does not change. It runs in slices with a macrotask between them, so the
 * server's clients are served meanwhile.
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "bun";
import type { Logger } from "pino";
import { Pv } from "../../pv/pv.ts";
import { Cmd, Framer } from "../codec/header.ts";
import { beginMessage, endMessage } from "../codec/messages.ts";
import { encodeType, struct } from "../codec/types.ts";
import { encodeValue } from "../codec/values.ts";
import { Reader, Writer } from "../codec/wire.ts";
import type { PvaServerConfig } from "./config.ts";
import {
  Connection,
  type ConnHost,
  type ConnSocketData,
  newPvaCounters,
  type PvaCounters,
} from "./connection.ts";
import { RpcRegistry } from "./rpc.ts";

export interface PvaWarmupOptions {
  /** GET EXECs on the synthetic channel per round (default 10,000). */
  gets?: number;
  /**
   * Rounds of GETs (default 3), with a pause between them: JSC compiles on background threads, and
   * a function it finished compiling only runs its optimised code, and gathers the profile the next
   * tier needs, when called again.
   */
  rounds?: number;
  /** Pause between rounds, ms (default 50). */
  pauseMs?: number;
  /** Monitor updates posted (default 2,000). */
  updates?: number;
  /** Requests per slice before yielding to the event loop (default 500). */
  slice?: number;
  /** Checked between slices: true ends the warm-up early (the server is stopping). */
  cancelled?: () => boolean;
}

export interface PvaWarmupReport {
  gets: number;
  updates: number;
  wallMs: number;
  /** Time spent in the slices (main-thread time taken from other work). */
  busyMs: number;
  cancelled: boolean;
  /** Messages the synthetic connection handled, monitor updates and bytes it sent (its own counters). */
  requests: number;
  updatesSent: number;
  bytesSent: number;
}

const DEFAULTS = { gets: 10_000, rounds: 3, pauseMs: 50, updates: 2_000, slice: 500 };

/**
 * Whether the product runs the PVA warm-up: IOCMNG_PVA_WARMUP unset or empty (off), 1/yes/true/on
 * or 0/no/false/off (any case). Anything else throws naming the variable. Off by default, unlike
 * the CA warm-up: its ~7 MB of compiled code is memory an IOC nobody reads over PVA would carry for
 * nothing (the server's memory with 11,000 PVs is the tightest product target), and no client meets
 * a PVA "storm" after a restart the way every CA client reconnects at once (docs/pva.md §Scheduling).
 */
export function pvaWarmupEnabled(env: Record<string, string | undefined>): boolean {
  const v = (env.IOCMNG_PVA_WARMUP ?? "").trim().toLowerCase();
  if (["1", "yes", "true", "on"].includes(v)) return true;
  if (v === "" || ["0", "no", "false", "off"].includes(v)) return false;
  throw new Error(
    `IOCMNG_PVA_WARMUP=${JSON.stringify(env.IOCMNG_PVA_WARMUP)}: expected yes/no, true/false, on/off or 1/0`,
  );
}
const NAME = "IOCMNG:PVA:WARMUP";

/** Takes every byte; keeps them only while `keep` (to read the CREATE_CHANNEL reply). */
class SinkSocket {
  readonly remoteAddress = "127.0.0.1";
  readonly remotePort = 0;
  readonly data: ConnSocketData = { conn: null };
  keep = false;
  readonly kept: Uint8Array[] = [];
  written = 0;
  write(b: Uint8Array, off = 0, len = b.length - off): number {
    if (this.keep) this.kept.push(b.slice(off, off + len));
    this.written += len;
    return len;
  }
  timeout(): void {}
  pause(): void {}
  resume(): void {}
  end(): void {}
}

function warmupHost(config: PvaServerConfig, pv: Pv): ConnHost {
  const counters: PvaCounters = newPvaCounters();
  return {
    config,
    rpc: new RpcRegistry(),
    guid: new Uint8Array(randomBytes(12)),
    counters,
    tcpPort: 0,
    access: null,
    lookupPv: (name) => (name === NAME ? pv : undefined),
    rpcHandler: () => undefined,
    peerBuffered: () => true,
    claim: () => [],
    connectionClosed: () => {},
  };
}

/** One client message (little-endian, as pvxs sends all but SEARCH). */
function msg(cmd: number, body: (w: Writer) => void): Uint8Array {
  const w = new Writer(64, true);
  const p = beginMessage(w, cmd, false);
  body(w);
  endMessage(w, p);
  return w.bytes().slice();
}

const EMPTY_REQUEST = struct("", [["field", struct("", [])]]);

function init(cmd: number, sid: number, ioid: number): Uint8Array {
  return msg(cmd, (w) => {
    w.u32(sid).u32(ioid).u8(0x08);
    encodeType(w, EMPTY_REQUEST);
    encodeValue(w, EMPTY_REQUEST, { field: {} });
  });
}

/** The sid of the CREATE_CHANNEL reply among what the connection wrote. */
function sidFrom(kept: Uint8Array[]): number {
  const f = new Framer(1 << 20);
  for (const chunk of kept) {
    for (const m of f.push(chunk)) {
      if (m.command !== Cmd.CREATE_CHANNEL) continue;
      const r = new Reader(m.payload, m.le);
      r.u32();
      return r.u32();
    }
  }
  throw new Error("warm-up: no CREATE_CHANNEL reply");
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * GETs `from` to `end` (an ECHO every 64th), each read handed over as a fresh Buffer, the type the
 * socket gives (no recompile when real reads arrive), and each followed by what the connection's
 * flush microtask does. Synchronous on purpose: an async loop made JSC spend ~0.4 s of compiler
 * time (and its memory) optimising the warm-up's own state machine.
 */
function getSlice(c: Connection, from: number, end: number, get: Uint8Array, echo: Uint8Array) {
  let n = from;
  for (; n < end; n++) {
    c.onData(Buffer.from(n % 64 === 63 ? echo : get));
    c.pumpMonitors();
    c.flush();
  }
  return n;
}

function postSlice(c: Connection, pv: Pv, from: number, end: number): number {
  let u = from;
  for (; u < end; u++) {
    pv.post(u);
    c.pumpMonitors();
    c.flush();
  }
  return u;
}
/** Lets the connection's flush (a microtask) run, as it does after each real socket read. */
const afterMicrotasks = () => Promise.resolve();

/**
 * Runs the warm-up; resolves with what it did. A rejection can only be a bug here; the caller logs
 * it and the server works the same without the warm-up.
 */
export async function warmUpPva(
  config: PvaServerConfig,
  logger: Logger,
  opts: PvaWarmupOptions = {},
): Promise<PvaWarmupReport> {
  const gets = (opts.gets ?? DEFAULTS.gets) * (opts.rounds ?? DEFAULTS.rounds);
  const perRound = opts.gets ?? DEFAULTS.gets;
  const pauseMs = opts.pauseMs ?? DEFAULTS.pauseMs;
  const updates = opts.updates ?? DEFAULTS.updates;
  const slice = Math.max(1, opts.slice ?? DEFAULTS.slice);
  const cancelled = opts.cancelled ?? (() => false);
  const t0 = performance.now();
  let busy = 0;
  await yieldToLoop();
  const pv = new Pv({ name: NAME, kind: "double", initial: 1.5 });
  const sock = new SinkSocket();
  const host = warmupHost(config, pv);
  const report = (n: number, u: number, stopped: boolean): PvaWarmupReport => ({
    gets: n,
    updates: u,
    wallMs: performance.now() - t0,
    busyMs: busy,
    cancelled: stopped,
    requests: host.counters.messages,
    updatesSent: host.counters.updatesSent,
    bytesSent: sock.written,
  });
  const conn = new Connection(
    host,
    sock as unknown as Socket<ConnSocketData>,
    logger.child({}, { level: "silent" }),
  );
  sock.data.conn = conn;
  try {
    conn.start();
    sock.keep = true;
    conn.onData(
      msg(Cmd.CONNECTION_VALIDATION, (w) =>
        w.u32(0x10000).u16(0x7fff).u16(0).string("anonymous").u8(0xff),
      ),
    );
    conn.onData(msg(Cmd.CREATE_CHANNEL, (w) => w.u16(1).u32(1).string(NAME)));
    await afterMicrotasks();
    const sid = sidFrom(sock.kept);
    sock.keep = false;
    conn.onData(init(Cmd.GET, sid, 1));
    const get = msg(Cmd.GET, (w) => w.u32(sid).u32(1).u8(0));
    const echo = msg(Cmd.ECHO, (w) => w.u32(0));
    let n = 0;
    while (n < gets) {
      if (cancelled()) return report(n, 0, true);
      const s = performance.now();
      const roundEnd = (Math.floor(n / perRound) + 1) * perRound;
      n = getSlice(conn, n, Math.min(gets, n + slice, roundEnd), get, echo);
      busy += performance.now() - s;
      await yieldToLoop();
      if (n % perRound === 0 && n < gets) await Bun.sleep(pauseMs);
    }
    conn.onData(init(Cmd.MONITOR, sid, 2));
    conn.onData(msg(Cmd.MONITOR, (w) => w.u32(sid).u32(2).u8(0x44)));
    let u = 0;
    while (u < updates) {
      if (cancelled()) return report(n, u, true);
      const s = performance.now();
      u = postSlice(conn, pv, u, Math.min(updates, u + slice));
      busy += performance.now() - s;
      await yieldToLoop();
    }
    return report(n, u, false);
  } finally {
    conn.onClose();
  }
}
