/**
 * The native pvAccess server (docs/pva.md): UDP search and beacons, TCP connections, and the tie to
 * the protocol-neutral PV source. It depends only on PvSource/Pv (src/pv), never on the CA server:
 * both serve the same PVs side by side.
 */
import { randomBytes } from "node:crypto";
import type dgram from "node:dgram";
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "pino";
import type { Pv } from "../../pv/pv.ts";
import type { PvSource } from "../../pv/source.ts";
import { type PvaServerConfig, resolvePvaConfig } from "./config.ts";
import { Connection, type ConnHost, type ConnSocketData, type PvaCounters } from "./connection.ts";
import { MonitorOp } from "./monitor.ts";
import { RpcRegistry } from "./rpc.ts";
import {
  Beacons,
  bindUdp,
  broadcastAddresses,
  FANOUT_GROUP,
  handleDatagram,
  openFanout,
  resolveDests,
  type SearchHost,
} from "./udp.ts";

export interface PvaServerStats extends PvaCounters {
  connections: number;
  channels: number;
  operations: number;
  queuedBytes: number;
  /** Monitor updates waiting in queues (each queue is bounded by its queueSize). */
  queuedUpdates: number;
  searchDatagrams: number;
  searchReplies: number;
  badDatagrams: number;
  beaconsSent: number;
  connectionsRefused: number;
}

export class PvaServer implements ConnHost {
  readonly source: PvSource;
  readonly logger: Logger;
  readonly config: PvaServerConfig;
  /** Handlers for RPC by channel name (the hook for jobs' runs). */
  readonly rpc: RpcRegistry;
  /** Stable for the life of the server: clients notice a restart by a new GUID. */
  readonly guid = new Uint8Array(randomBytes(12));
  readonly counters: PvaCounters = {
    messages: 0,
    badMessages: 0,
    updatesSent: 0,
    updatesSquashed: 0,
    bytesSent: 0,
    connectionsDropped: 0,
    refusals: 0,
  };
  private readonly udpStats = { searchDatagrams: 0, searchReplies: 0, badDatagrams: 0 };
  private _tcpPort = 0;
  private _udpPort = 0;
  private listeners: TCPSocketListener<ConnSocketData>[] = [];
  private udpSockets: dgram.Socket[] = [];
  private beaconSocket: dgram.Socket | undefined;
  private fanoutTx: dgram.Socket | undefined;
  private beacons: Beacons | null = null;
  private readonly conns = new Set<Connection>();
  private readonly perIp = new Map<string, number>();
  private readonly refusedIps = new Set<string>();
  private connectionsRefused = 0;
  private offRpc: (() => void) | null = null;
  private state: "new" | "running" | "stopped" = "new";

  constructor(opts: {
    source: PvSource;
    logger: Logger;
    config?: Partial<PvaServerConfig>;
    rpc?: RpcRegistry;
  }) {
    this.source = opts.source;
    this.logger = opts.logger.child({ component: "pva-server" });
    this.config = resolvePvaConfig(opts.config);
    this.rpc = opts.rpc ?? new RpcRegistry();
  }

  get tcpPort(): number {
    return this._tcpPort;
  }

  get udpPort(): number {
    return this._udpPort;
  }

  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`PVA server already ${this.state}`);
    this.state = "running";
    try {
      this.listenTcp();
      await this.bindUdp();
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.offRpc = this.rpc.onChange((name, added) => {
      if (!added) this.dropRpcChannels(name);
    });
    await this.startBeacons();
    this.logger.info(
      { tcpPort: this._tcpPort, udpPort: this._udpPort },
      `pvAccess server on TCP ${this._tcpPort}, UDP ${this._udpPort}`,
    );
  }

  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.offRpc?.();
    this.beacons?.stop();
    for (const c of [...this.conns]) c.shutdown();
    for (const l of this.listeners) l.stop(true);
    this.listeners = [];
    for (const s of this.udpSockets) {
      try {
        s.close();
      } catch {
        // already closed
      }
    }
    this.udpSockets = [];
  }

  stats(): PvaServerStats {
    let channels = 0;
    let operations = 0;
    let queuedBytes = 0;
    let queuedUpdates = 0;
    for (const c of this.conns) {
      channels += c.channels.size;
      operations += c.ops.size;
      queuedBytes += c.queuedBytes;
      for (const op of c.ops.values()) if (op instanceof MonitorOp) queuedUpdates += op.queued;
    }
    return {
      ...this.counters,
      ...this.udpStats,
      connections: this.conns.size,
      channels,
      operations,
      queuedBytes,
      queuedUpdates,
      beaconsSent: this.beacons?.sent ?? 0,
      connectionsRefused: this.connectionsRefused,
    };
  }

  lookupPv(name: string): Pv | undefined {
    return this.source.get(name);
  }

  claim(channels: Array<{ id: number; name: string }>): number[] {
    const ids: number[] = [];
    for (const c of channels) if (this.source.has(c.name) || this.rpc.has(c.name)) ids.push(c.id);
    return ids;
  }

  connectionClosed(c: Connection): void {
    if (!this.conns.delete(c)) return;
    const n = (this.perIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) {
      this.perIp.delete(c.ip);
      this.refusedIps.delete(c.ip);
    } else this.perIp.set(c.ip, n);
  }

  private dropRpcChannels(name: string): void {
    for (const c of this.conns) {
      for (const ch of [...c.channels.values()])
        if (ch.name === name && !ch.pv) c.serverDestroy(ch);
    }
  }

  private bindAddrs(): string[] {
    return this.config.intfAddrs.length > 0 ? this.config.intfAddrs : ["0.0.0.0"];
  }

  private listenOne(hostname: string, port: number): TCPSocketListener<ConnSocketData> {
    return Bun.listen<ConnSocketData>({
      hostname,
      port,
      data: { conn: null },
      socket: {
        open: (s) => this.onOpen(s),
        data: (s, d) => s.data.conn?.onData(d),
        drain: (s) => s.data.conn?.onDrain(),
        close: (s) => s.data.conn?.onClose(),
        timeout: (s) => s.data.conn?.drop("idle timeout"),
        error: (s, err) => this.logger.debug({ err, peer: s.data.conn?.peer }, "PVA socket error"),
      },
    });
  }

  /** TCP on the configured port, or any free port when it is taken (advertised in replies). */
  private listenTcp(): void {
    let port = this.config.serverPort;
    for (const host of this.bindAddrs()) {
      let l: TCPSocketListener<ConnSocketData>;
      try {
        l = this.listenOne(host, port);
      } catch (e) {
        if (this.listeners.length > 0 || port === 0) throw e;
        this.logger.warn({ port, err: e }, "PVA TCP port taken; using a free port");
        l = this.listenOne(host, 0);
      }
      this.listeners.push(l);
      port = l.port;
    }
    this._tcpPort = port;
  }

  private async bindUdp(): Promise<void> {
    let port = this.config.broadcastPort;
    const host = this.searchHost();
    for (const addr of this.bindAddrs()) {
      const s = await bindUdp(addr, port);
      port = s.address().port;
      try {
        // A connect storm sends search bursts while the event loop is busy with the channels that
        // came before: a deeper buffer keeps them queued instead of dropped (and retried seconds
        // later by the client). The kernel caps it at net.core.rmem_max.
        s.setRecvBufferSize(4 * 1024 * 1024);
      } catch {
        // Not supported here: the default buffer still works, only storms are slower.
      }
      // Replies leave from the search socket itself, as pvxs's do: a pvxs client answered from
      // another port connects only after a delay (0.4 s instead of 0.15 s for one pvxget).
      this.beaconSocket ??= s;
      s.on("message", (msg, rinfo) => this.onDatagram(s, host, msg, rinfo, true));
      s.on("error", (err) => this.logger.debug({ err }, "PVA UDP socket error"));
      this.udpSockets.push(s);
    }
    this._udpPort = port;
    await this.startFanout(host);
  }

  private searchHost(): SearchHost {
    const host: SearchHost = {
      guid: this.guid,
      tcpPort: 0,
      ignoreAddrs: new Set(this.config.ignoreAddrs),
      claim: (c) => this.claim(c),
      stats: this.udpStats,
      logger: this.logger,
      fanoutOrigin: null,
    };
    Object.defineProperty(host, "tcpPort", { get: () => this._tcpPort });
    return host;
  }

  /** Shares the UDP port with other servers on this host (docs/pva.md §Discovery). */
  private async startFanout(host: SearchHost): Promise<void> {
    const first = this.bindAddrs()[0] ?? "0.0.0.0";
    const reply = this.udpSockets[0];
    if (!reply || !(first === "0.0.0.0" || first.startsWith("127."))) return;
    const f = await openFanout(this._udpPort, this.logger);
    if (!f) return;
    this.udpSockets.push(f.rx, f.tx);
    this.fanoutTx = f.tx;
    host.fanoutOrigin = first;
    const ownPort = f.tx.address().port;
    f.tx.on("error", () => {});
    f.rx.on("error", (err) => this.logger.debug({ err }, "PVA fan-out socket error"));
    f.rx.on("message", (msg, rinfo) => {
      // Our own copies were answered when they came in directly.
      if (rinfo.port === ownPort && rinfo.address === "127.0.0.1") return;
      this.onDatagram(reply, host, msg, rinfo, false);
    });
  }

  private onDatagram(
    s: dgram.Socket,
    host: SearchHost,
    msg: Uint8Array,
    rinfo: { address: string; port: number },
    direct: boolean,
  ): void {
    const r = handleDatagram(host, msg, rinfo, direct);
    for (const [b, a, p] of r.replies) {
      try {
        s.send(b, p, a);
      } catch {
        // Unreachable reply address: the client will search again.
      }
    }
    if (r.forward && this.fanoutTx) {
      try {
        this.fanoutTx.send(r.forward, this._udpPort, FANOUT_GROUP);
      } catch {
        // Fan-out is best effort: local peers may miss this one search.
      }
    }
  }

  private async startBeacons(): Promise<void> {
    const sock = this.beaconSocket;
    if (!sock) return;
    const entries = [...this.config.beaconAddrs];
    if (this.config.autoBeaconAddrList) entries.push(...broadcastAddresses());
    const dests = await resolveDests(entries, this._udpPort, this.logger);
    try {
      sock.setBroadcast(true);
    } catch {
      // Some platforms refuse on an unbound socket; broadcasts then fail per send.
    }
    if (this.state !== "running") return;
    this.beacons = new Beacons(
      sock,
      dests,
      this.guid,
      () => this._tcpPort,
      this.config.beaconPeriod,
    );
    this.beacons.start();
  }

  private onOpen(s: Socket<ConnSocketData>): void {
    const ip = s.remoteAddress;
    const n = this.perIp.get(ip) ?? 0;
    if (this.state !== "running" || n >= this.config.maxConnectionsPerPeer) {
      this.connectionsRefused++;
      if (!this.refusedIps.has(ip)) {
        this.refusedIps.add(ip);
        this.logger.warn({ peer: ip }, "PVA connection refused: per-peer connection limit");
      }
      s.end();
      return;
    }
    this.perIp.set(ip, n + 1);
    const c = new Connection(this, s, this.logger);
    // A fresh object: the listener's default `data` is shared by every socket it accepts.
    s.data = { conn: c };
    this.conns.add(c);
    s.timeout(this.config.connTimeout);
    // Replies are small and each one unblocks the client's next step: no Nagle delay.
    s.setNoDelay(true);
    c.start();
  }
}
