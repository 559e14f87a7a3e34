/**
 * The PVA server's search thread: a session in the search Worker (src/common/search-worker.ts,
 * shared with the CA server's in `iocmng serve`) that owns the UDP sockets (search on the
 * broadcast port, the loopback fan-out, beacons) and answers name searches from a mirror of the
 * served names (opened by SearchThread, search-thread.ts).
 *
 * Why a thread of its own: in a connect storm (`pvxget` of 10,000 PVs) the client sends search
 * bursts while the main event loop is busy creating the channels the previous replies brought;
 * on one loop each burst waited behind that work and, under load, the client's retries stretched
 * the storm (docs/benchmarks.md). softIocPVX answers searches on a UDP thread; so does our CA
 * server. Loaded by the Worker from `new URL("./pva-search-worker.ts", import.meta.url)`
 * (scripts/build.ts lists it; the name differs from CA's session module because entrypoints sit
 * side by side inside the binary).
 */
import type dgram from "node:dgram";
import { NameMirror, type NameOps } from "../../common/name-mirror.ts";
import { NameSet } from "../../common/name-set.ts";
import type { FromSearchThread } from "../../common/search-thread-host.ts";
import {
  BAD_DATAGRAMS,
  BEACONS_SENT,
  SEARCH_COUNTER_SLOTS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
  type ToSearchThread,
} from "./search-protocol.ts";
import {
  Beacons,
  bindUdp,
  FANOUT_GROUP,
  handleDatagram,
  type LogLike,
  openFanout,
  type SearchHost,
} from "./udp.ts";

type BindMessage = Extract<ToSearchThread, { t: "bind" }>;

/** Called by the search Worker (src/common/search-thread-worker.ts) for each PVA server. */
export function attachSearchSession(port: MessagePort): void {
  const session = new PvaSearchSession(port);
  port.onmessage = (e) => session.onMessage(e.data as ToSearchThread);
}

/** One PVA server's UDP sockets, beacons, names and counters in the search Worker. */
class PvaSearchSession {
  /** Served names, counted (a PV and an RPC handler may share a name); UTF-8, as on the wire. */
  private readonly names = new NameSet("utf8");
  private counters: Float64Array<ArrayBufferLike> = new Float64Array(SEARCH_COUNTER_SLOTS);
  /** Keeps `names` in step with the served names (src/common/name-mirror.ts); set by "init". */
  private mirror: NameMirror | null = null;
  private sockets: dgram.Socket[] = [];
  private beacons: Beacons | null = null;
  private readonly stats = { searchDatagrams: 0, searchReplies: 0, badDatagrams: 0 };
  private readonly host: SearchHost = {
    guid: new Uint8Array(12),
    tcpPort: 0,
    ignoreAddrs: new Set(),
    claim: (channels) => {
      // Changes posted before this datagram arrived are applied first (name-mirror.ts).
      this.mirror?.sync();
      const ids: number[] = [];
      for (const c of channels) if (this.names.hasName(c.name)) ids.push(c.id);
      return ids;
    },
    stats: this.stats,
    fanoutOrigin: null,
  };
  private readonly log: LogLike = {
    debug: (obj, msg) => this.logAt("debug", msg, obj),
    warn: (obj, msg) => this.logAt("warn", msg, obj),
  };

  constructor(private readonly port: MessagePort) {}

  onMessage(m: ToSearchThread): void {
    switch (m.t) {
      case "init": {
        this.host.guid = m.guid;
        this.host.ignoreAddrs = new Set(m.ignoreAddrs);
        const counters = new Float64Array(m.counters);
        this.counters = counters;
        // A replacement thread carries on the counts of the one before.
        this.stats.searchDatagrams = counters[SEARCH_DATAGRAMS] ?? 0;
        this.stats.searchReplies = counters[SEARCH_REPLIES] ?? 0;
        this.stats.badDatagrams = counters[BAD_DATAGRAMS] ?? 0;
        this.mirror = new NameMirror(m, this.applyBatch);
        break;
      }
      case "bind":
        this.bind(m).then(
          (udpPort) => this.post({ t: "bound", udpPort }),
          (err: unknown) => {
            this.closeSockets();
            const message = err instanceof Error ? err.message : String(err);
            this.post({ t: "bindError", message });
          },
        );
        break;
      case "close":
        this.closeSockets();
        this.post({ t: "closed" });
        break;
    }
  }

  private post(m: FromSearchThread): void {
    this.port.postMessage(m);
  }

  private logAt(level: "debug" | "warn" | "error", msg: string, obj?: object): void {
    const detail: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj ?? {})) {
      detail[k] = v instanceof Error ? v.message : String(v);
    }
    this.post({ t: "log", level, msg, detail });
  }

  private closeSockets(): void {
    this.beacons?.stop();
    this.beacons = null;
    for (const s of this.sockets) {
      try {
        s.close();
      } catch {
        // Already closed.
      }
    }
    this.sockets = [];
  }

  /** Mirrors the counters into shared memory, then sends what handleDatagram decided. */
  private onDatagram(
    reply: dgram.Socket,
    fanoutTx: dgram.Socket | null,
    udpPort: number,
    msg: Uint8Array,
    from: { address: string; port: number },
    direct: boolean,
  ): void {
    const r = handleDatagram(this.host, msg, from, direct);
    // Counters first: whoever sees a reply also sees it counted.
    const { counters, stats } = this;
    counters[SEARCH_DATAGRAMS] = stats.searchDatagrams;
    counters[SEARCH_REPLIES] = stats.searchReplies;
    counters[BAD_DATAGRAMS] = stats.badDatagrams;
    for (const [b, a, p] of r.replies) {
      try {
        reply.send(b, p, a);
      } catch {
        // Unreachable reply address: the client will search again.
      }
    }
    if (r.forward && fanoutTx) {
      try {
        fanoutTx.send(r.forward, udpPort, FANOUT_GROUP);
      } catch {
        // Fan-out is best effort: local peers may miss this one search.
      }
    }
  }

  private async bind(m: BindMessage): Promise<number> {
    this.closeSockets();
    this.host.tcpPort = m.tcpPort;
    let port = m.port;
    let first: dgram.Socket | null = null;
    // Declared before the sockets exist: their handlers may run during the awaits below.
    let fanoutTx: dgram.Socket | null = null;
    for (const addr of m.addrs) {
      const s = await bindUdp(addr, port);
      this.sockets.push(s);
      port = s.address().port;
      try {
        // Storm bursts queue in the kernel rather than being dropped (capped by rmem_max).
        s.setRecvBufferSize(4 * 1024 * 1024);
      } catch {
        // Not supported here: the default buffer still works, only storms are slower.
      }
      // Replies leave from the search socket itself, as pvxs's do (docs/pva.md §Discovery).
      const reply = s;
      first ??= s;
      s.on("message", (msg, rinfo) => this.onDatagram(reply, fanoutTx, port, msg, rinfo, true));
      s.on("error", (err) => this.log.debug({ err }, "PVA UDP socket error"));
    }
    const origin = m.addrs[0] ?? "0.0.0.0";
    if (first && (origin === "0.0.0.0" || origin.startsWith("127."))) {
      const f = await openFanout(port, this.log);
      if (f) {
        this.sockets.push(f.rx, f.tx);
        fanoutTx = f.tx;
        this.host.fanoutOrigin = origin;
        const ownPort = f.tx.address().port;
        const reply = first;
        f.tx.on("error", () => {});
        f.rx.on("error", (err) => this.log.debug({ err }, "PVA fan-out socket error"));
        f.rx.on("message", (msg, rinfo) => {
          // Our own copies were answered when they came in directly.
          if (rinfo.port === ownPort && rinfo.address === "127.0.0.1") return;
          this.onDatagram(reply, fanoutTx, port, msg, rinfo, false);
        });
      }
    }
    if (first) this.startBeacons(first, m, port);
    return port;
  }

  private startBeacons(sock: dgram.Socket, m: BindMessage, udpPort: number): void {
    try {
      sock.setBroadcast(true);
    } catch {
      // Some platforms refuse; broadcasts then fail per send.
    }
    // Port 0: "the broadcast port", known only now that the socket is bound.
    const dests = m.beaconDests.map((d) => ({ address: d.address, port: d.port || udpPort }));
    const before = this.counters[BEACONS_SENT] ?? 0;
    this.beacons = new Beacons(
      sock,
      dests,
      this.host.guid,
      () => this.host.tcpPort,
      m.beaconPeriod,
      (sent) => {
        this.counters[BEACONS_SENT] = before + sent;
      },
    );
    this.beacons.start();
  }

  /** One batch of name changes: "+NAME" one more server of the name, "-NAME" one fewer. */
  private readonly applyBatch = (ops: NameOps): void => {
    for (const op of ops) {
      if (op.charCodeAt(0) === 43 /* + */) this.names.add(op.slice(1));
      else this.names.remove(op.slice(1));
    }
  };
}
