/**
 * The CA server's search thread: a Bun Worker that owns the UDP search sockets and answers name
 * searches from a mirror of the registry's names (started by SearchThread, search-thread.ts).
 *
 * Why a thread of its own: rsrv answers searches on a UDP thread while circuits run on others. On
 * one event loop, a connect storm serialises each burst of search datagrams behind the
 * CREATE_CHANs the previous burst's replies triggered (~1 ms per 2,000 channels), and libca sends
 * its next burst only when every reply of the current one is in, so that wait sat on the critical
 * path of every round (docs/benchmarks.md). Referenced as
 * `new URL("./search-worker.ts", import.meta.url)` so `bun build --compile` embeds it
 * (scripts/build.ts lists it as an entrypoint).
 */
import type dgram from "node:dgram";
import { NameMirror, type NameOps } from "../../common/name-mirror.ts";
import { enterRealtime } from "../../common/realtime.ts";
import type { FromSearchThread } from "../../common/search-thread-host.ts";
import { NameIndex } from "./names.ts";
import { REPLIES_DROPPED, SEARCH_COUNTER_SLOTS, type ToSearchThread } from "./search-protocol.ts";
import { warmUpSearch } from "./search-warmup.ts";
import { bindUdp, nativeUdpSend, SearchReplySender, SearchResponder } from "./udp.ts";

declare const self: Worker;

const names = new NameIndex<true>();
let counters: Float64Array<ArrayBufferLike> = new Float64Array(SEARCH_COUNTER_SLOTS);
let ignoreAddrs: string[] = [];
let maxNameLength = 1007;
let tcpPort = 0;
let sockets: dgram.Socket[] = [];
let senders: SearchReplySender[] = [];
let flushQueued = false;
/** Keeps `names` in step with the registry (src/common/name-mirror.ts); set by "init". */
let mirror: NameMirror | null = null;
/** Set by "close" or a real search: a warm-up still running stops at its next slice. */
let closing = false;
let realSearchSeen = false;

function post(m: FromSearchThread): void {
  self.postMessage(m);
}

function log(level: "debug" | "warn" | "error", msg: string, detail?: Record<string, string>) {
  post(detail === undefined ? { t: "log", level, msg } : { t: "log", level, msg, detail });
}

const flushReplies = (): void => {
  flushQueued = false;
  for (const s of senders) s.flush();
};

function responder(): SearchResponder {
  return new SearchResponder(
    names,
    () => tcpPort,
    ignoreAddrs,
    maxNameLength,
    (msg) => log("warn", msg),
    counters,
  );
}

function closeSockets(): void {
  for (const s of sockets) {
    try {
      s.close();
    } catch {
      // Already closed.
    }
  }
  sockets = [];
  senders = [];
}

async function bind(addrs: string[], port: number, mcastGroups: string[]): Promise<number> {
  closeSockets();
  const search = responder();
  try {
    for (const addr of addrs) {
      const s = await bindUdp(addr, port);
      sockets.push(s);
      for (const g of mcastGroups) {
        try {
          s.addMembership(g);
        } catch (e) {
          log("warn", "cannot join CA multicast group", { group: g, err: String(e) });
        }
      }
      const sender = new SearchReplySender(s, nativeUdpSend(s), (err, to) => {
        counters[REPLIES_DROPPED] = (counters[REPLIES_DROPPED] ?? 0) + 1;
        log("debug", "CA search reply failed", { to, err: err.message });
      });
      senders.push(sender);
      s.on("message", (msg, rinfo) => {
        // Until the TCP port is known there is nothing to advertise; the client searches again.
        if (tcpPort === 0) return;
        realSearchSeen = true;
        // Registry changes posted before this datagram arrived are applied first.
        mirror?.sync();
        let queued: number;
        try {
          queued = search.handle(msg, rinfo.address, rinfo.port, sender);
        } catch (e) {
          log("error", "CA search handling failed", { err: String(e) });
          return;
        }
        if (queued === 0) return;
        // Microtasks run after every datagram, setImmediate once after all the datagrams the
        // event loop read in this iteration: the burst's replies leave in one sendmmsg.
        if (!flushQueued) {
          flushQueued = true;
          setImmediate(flushReplies);
        }
      });
      s.on("error", (err) => log("warn", "CA UDP socket error", { err: err.message }));
    }
  } catch (e) {
    closeSockets();
    throw e;
  }
  return sockets[0]?.address().port ?? port;
}

/** One batch of registry changes: "+NAME" served from now on, "-NAME" no longer served. */
function applyBatch(ops: NameOps): void {
  for (const op of ops) {
    if (op.charCodeAt(0) === 43 /* + */) names.set(op.slice(1), true);
    else names.delete(op.slice(1));
  }
}

self.onmessage = (e: MessageEvent<ToSearchThread>) => {
  const m = e.data;
  switch (m.t) {
    case "init":
      ignoreAddrs = m.ignoreAddrs;
      maxNameLength = m.maxNameLength;
      counters = new Float64Array(m.counters);
      mirror = new NameMirror(m, applyBatch);
      if (m.realtimePriority > 0) {
        // Searches answered as rsrv's CAS-UDP thread answers them: ahead of ordinary processes.
        enterRealtime(m.realtimePriority).then((why) => {
          if (why !== null) log("debug", "CA search thread not real-time", { why });
        });
      }
      break;
    case "bind":
      tcpPort = m.tcpPort;
      bind(m.addrs, m.port, m.mcastGroups).then(
        (udpPort) => post({ t: "bound", udpPort }),
        (err: unknown) =>
          post({ t: "bindError", message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case "tcpPort":
      tcpPort = m.port;
      break;
    case "warmup":
      warmUpSearch(maxNameLength, m.datagrams, 32, () => closing || realSearchSeen).then(
        (r) =>
          log("debug", "CA search path warmed up", {
            datagrams: String(r.datagrams),
            cancelled: String(r.datagrams < m.datagrams),
            replies: String(r.replies),
            wallMs: r.wallMs.toFixed(1),
            busyMs: r.busyMs.toFixed(1),
          }),
        (e: unknown) => log("warn", "CA search warm-up failed", { err: String(e) }),
      );
      break;
    case "close":
      closing = true;
      closeSockets();
      post({ t: "closed" });
      break;
  }
};
