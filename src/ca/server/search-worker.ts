/**
 * The CA server's search thread: a session in the search Worker (src/common/search-worker.ts,
 * shared with the PVA server's in `iocmng serve`) that owns the UDP search sockets and answers
 * name searches from a mirror of the registry's names (opened by SearchThread, search-thread.ts).
 *
 * Why a thread of its own: rsrv answers searches on a UDP thread while circuits run on others. On
 * one event loop, a connect storm serialises each burst of search datagrams behind the
 * CREATE_CHANs the previous burst's replies triggered (~1 ms per 2,000 channels), and libca sends
 * its next burst only when every reply of the current one is in, so that wait sat on the critical
 * path of every round (docs/benchmarks.md). Loaded by the Worker from
 * `new URL("./search-worker.ts", import.meta.url)` (scripts/build.ts lists it as an entrypoint).
 */
import type dgram from "node:dgram";
import { NameMirror, type NameOps } from "../../common/name-mirror.ts";
import { NameSet } from "../../common/name-set.ts";
import type { FromSearchThread } from "../../common/search-thread-host.ts";
import { REPLIES_DROPPED, SEARCH_COUNTER_SLOTS, type ToSearchThread } from "./search-protocol.ts";
import { warmUpSearch } from "./search-warmup.ts";
import { bindUdp, nativeUdpSend, SearchReplySender, SearchResponder } from "./udp.ts";

/** Called by the search Worker (src/common/search-thread-worker.ts) for each CA server. */
export function attachSearchSession(port: MessagePort): void {
  const session = new CaSearchSession(port);
  port.onmessage = (e) => session.onMessage(e.data as ToSearchThread);
}

/** One CA server's search sockets, names and counters in the search Worker. */
class CaSearchSession {
  /** Bytes as latin1, as the CA server matches names everywhere (src/common/name-set.ts). */
  private readonly names = new NameSet("latin1");
  private counters: Float64Array<ArrayBufferLike> = new Float64Array(SEARCH_COUNTER_SLOTS);
  private ignoreAddrs: string[] = [];
  private maxNameLength = 1007;
  private tcpPort = 0;
  private sockets: dgram.Socket[] = [];
  private senders: SearchReplySender[] = [];
  private flushQueued = false;
  /** Keeps `names` in step with the registry (src/common/name-mirror.ts); set by "init". */
  private mirror: NameMirror | null = null;
  /** Set by "close" or a real search: a warm-up still running stops at its next slice. */
  private closing = false;
  private realSearchSeen = false;

  constructor(private readonly port: MessagePort) {}

  onMessage(m: ToSearchThread): void {
    switch (m.t) {
      case "init":
        this.ignoreAddrs = m.ignoreAddrs;
        this.maxNameLength = m.maxNameLength;
        this.counters = new Float64Array(m.counters);
        this.mirror = new NameMirror(m, this.applyBatch);
        break;
      case "bind":
        this.tcpPort = m.tcpPort;
        this.bind(m.addrs, m.port, m.mcastGroups).then(
          (udpPort) => this.post({ t: "bound", udpPort }),
          (err: unknown) =>
            this.post({
              t: "bindError",
              message: err instanceof Error ? err.message : String(err),
            }),
        );
        break;
      case "tcpPort":
        this.tcpPort = m.port;
        break;
      case "warmup":
        this.warmUp(m.datagrams);
        break;
      case "close":
        this.closing = true;
        this.closeSockets();
        this.post({ t: "closed" });
        break;
    }
  }

  private post(m: FromSearchThread): void {
    this.port.postMessage(m);
  }

  private log(level: "debug" | "warn" | "error", msg: string, detail?: Record<string, string>) {
    this.post(detail === undefined ? { t: "log", level, msg } : { t: "log", level, msg, detail });
  }

  private readonly flushReplies = (): void => {
    this.flushQueued = false;
    for (const s of this.senders) s.flush();
  };

  private closeSockets(): void {
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // Already closed.
      }
    }
    this.sockets = [];
    this.senders = [];
  }

  private async bind(addrs: string[], port: number, mcastGroups: string[]): Promise<number> {
    this.closeSockets();
    const search = new SearchResponder(
      this.names,
      this.ignoreAddrs,
      this.maxNameLength,
      (msg) => this.log("warn", msg),
      this.counters,
    );
    try {
      for (const addr of addrs) {
        const s = await bindUdp(addr, port);
        this.sockets.push(s);
        for (const g of mcastGroups) {
          try {
            s.addMembership(g);
          } catch (e) {
            this.log("warn", "cannot join CA multicast group", { group: g, err: String(e) });
          }
        }
        const sender = new SearchReplySender(s, nativeUdpSend(s), (err, to) => {
          this.counters[REPLIES_DROPPED] = (this.counters[REPLIES_DROPPED] ?? 0) + 1;
          this.log("debug", "CA search reply failed", { to, err: err.message });
        });
        this.senders.push(sender);
        s.on("message", (msg, rinfo) => this.onDatagram(search, sender, msg, rinfo));
        s.on("error", (err) => this.log("warn", "CA UDP socket error", { err: err.message }));
      }
    } catch (e) {
      this.closeSockets();
      throw e;
    }
    return this.sockets[0]?.address().port ?? port;
  }

  private onDatagram(
    search: SearchResponder,
    sender: SearchReplySender,
    msg: Buffer,
    rinfo: dgram.RemoteInfo,
  ): void {
    // Until the TCP port is known there is nothing to advertise; the client searches again.
    if (this.tcpPort === 0) return;
    this.realSearchSeen = true;
    // Registry changes posted before this datagram arrived are applied first.
    this.mirror?.sync();
    let queued: number;
    try {
      queued = search.handle(msg, rinfo.address, rinfo.port, sender, this.tcpPort);
    } catch (e) {
      this.log("error", "CA search handling failed", { err: String(e) });
      return;
    }
    if (queued === 0) return;
    // Microtasks run after every datagram, setImmediate once after all the datagrams the
    // event loop read in this iteration: the burst's replies leave in one sendmmsg.
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flushReplies);
    }
  }

  private warmUp(datagrams: number): void {
    warmUpSearch(this.maxNameLength, datagrams, 32, () => this.closing || this.realSearchSeen).then(
      (r) =>
        this.log("debug", "CA search path warmed up", {
          datagrams: String(r.datagrams),
          cancelled: String(r.datagrams < datagrams),
          replies: String(r.replies),
          wallMs: r.wallMs.toFixed(1),
          busyMs: r.busyMs.toFixed(1),
        }),
      (e: unknown) => this.log("warn", "CA search warm-up failed", { err: String(e) }),
    );
  }

  /** One batch of registry changes: "+NAME" served from now on, "-NAME" no longer served. */
  private readonly applyBatch = (ops: NameOps): void => {
    for (const op of ops) {
      // Registry names are unique, so the set's counts stay 0 or 1 here.
      if (op.charCodeAt(0) === 43 /* + */) this.names.add(op.slice(1));
      else this.names.remove(op.slice(1));
    }
  };
}
