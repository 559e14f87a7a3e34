/**
 * The native pvAccess server (docs/pva.md): UDP search and beacons, TCP connections, and the tie to
 * the protocol-neutral PV source. It depends only on PvSource/Pv (src/pv), never on the CA server:
 * both serve the same PVs side by side.
 */
import { randomBytes } from "node:crypto";
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "pino";
import type { SearchWorker } from "../../common/search-worker.ts";
import type { AccessPolicy } from "../../pv/access.ts";
import type { Pv } from "../../pv/pv.ts";
import type { PvSource } from "../../pv/source.ts";
import { type PvaServerConfig, resolvePvaConfig } from "./config.ts";
import {
  Connection,
  type ConnHost,
  type ConnSocketData,
  newPvaCounters,
  type PvaCounters,
} from "./connection.ts";
import { MonitorOp } from "./monitor.ts";
import { type RpcHandler, RpcRegistry } from "./rpc.ts";
import { SearchThread } from "./search-thread.ts";
import { SERVER_PV, serverPvHandler } from "./server-pv.ts";
import { broadcastAddresses, resolveDests } from "./udp.ts";
import { type PvaWarmupOptions, type PvaWarmupReport, warmUpPva } from "./warmup.ts";

export interface PvaServerStats extends PvaCounters {
  connections: number;
  channels: number;
  operations: number;
  queuedBytes: number;
  /** Bytes counted against the per-peer cap, all peers (unsent output + partly received input). */
  bufferedBytes: number;
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
  /** Access security and the audit trail; null = each PV's own rights, no audit. */
  readonly access: AccessPolicy | null;
  /** Stable for the life of the server: clients notice a restart by a new GUID. */
  readonly guid = new Uint8Array(randomBytes(12));
  readonly counters: PvaCounters = newPvaCounters();
  private _tcpPort = 0;
  private _udpPort = 0;
  private listeners: TCPSocketListener<ConnSocketData>[] = [];
  /** UDP search, fan-out and beacons, on a thread of their own (search-thread.ts). */
  private search: SearchThread | null = null;
  /** The search Worker to run that thread in, when shared with another server. */
  private readonly searchWorker: SearchWorker | undefined;
  private readonly conns = new Set<Connection>();
  private readonly perIp = new Map<string, number>();
  private readonly refusedIps = new Set<string>();
  /** Buffered bytes (unsent output + partial input) of all connections of each peer IP. */
  private readonly peerBytes = new Map<string, number>();
  /** Peers whose buffered-bytes refusal was logged (once until their last connection closes). */
  private readonly bytesRefusedIps = new Set<string>();
  private connectionsRefused = 0;
  /** The built-in `server` PV (server-pv.ts), null when config.serverPv is off. */
  private readonly serverPv: RpcHandler | null;
  private offRpc: (() => void) | null = null;
  private state: "new" | "running" | "stopped" = "new";

  constructor(opts: {
    source: PvSource;
    logger: Logger;
    config?: Partial<PvaServerConfig>;
    rpc?: RpcRegistry;
    access?: AccessPolicy | null;
    /** What the `server` PV's op=info reports as version (pvxlist -i). */
    version?: string;
    /** Run the search thread in this Worker (shared with the CA server); none: one of its own. */
    searchWorker?: SearchWorker;
  }) {
    this.source = opts.source;
    this.searchWorker = opts.searchWorker;
    this.logger = opts.logger.child({ component: "pva-server" });
    this.config = resolvePvaConfig(opts.config);
    this.rpc = opts.rpc ?? new RpcRegistry();
    this.access = opts.access ?? null;
    this.serverPv = this.config.serverPv
      ? serverPvHandler(() => this.channelNames(), opts.version ?? `iocmng (Bun ${Bun.version})`)
      : null;
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
    this.logger.info(
      { tcpPort: this._tcpPort, udpPort: this._udpPort },
      `pvAccess server on TCP ${this._tcpPort}, UDP ${this._udpPort}`,
    );
  }

  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.offRpc?.();
    for (const c of [...this.conns]) c.shutdown();
    for (const l of this.listeners) l.stop(true);
    this.listeners = [];
    await this.search?.stop();
    this.search = null;
  }

  /**
   * Runs the connection hot paths on synthetic traffic so JSC compiles them before clients lean on
   * them (warmup.ts); the product calls it after start, next to the CA warm-up. Touches nothing
   * clients or stats() see; ends early when the server stops.
   */
  warmUp(opts: PvaWarmupOptions = {}): Promise<PvaWarmupReport> {
    const stopped = () => this.state !== "running";
    return warmUpPva(this.config, this.logger, {
      ...opts,
      cancelled: () => stopped() || (opts.cancelled?.() ?? false),
    });
  }

  /** @internal Tests: ends the search thread as a crash would (it is started again). */
  crashSearchThreadForTest(): void {
    this.search?.crashForTest();
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
      ...(this.search?.stats() ?? {
        searchDatagrams: 0,
        searchReplies: 0,
        badDatagrams: 0,
        beaconsSent: 0,
      }),
      connections: this.conns.size,
      channels,
      operations,
      queuedBytes,
      bufferedBytes: [...this.peerBytes.values()].reduce((a, b) => a + b, 0),
      queuedUpdates,
      connectionsRefused: this.connectionsRefused,
    };
  }

  lookupPv(name: string): Pv | undefined {
    return this.source.get(name);
  }

  rpcHandler(name: string): RpcHandler | undefined {
    const h = this.rpc.get(name);
    if (h || name !== SERVER_PV || !this.serverPv || this.source.has(name)) return h;
    // A PV or RPC of that name takes precedence; the built-in is never answered by search.
    return this.serverPv;
  }

  /** Every channel name served: PVs, then RPC names (the `server` PV's `op=channels`). */
  private *channelNames(): Iterable<string> {
    yield* this.source.names();
    yield* this.rpc.names();
  }

  claim(channels: Array<{ id: number; name: string }>): number[] {
    const ids: number[] = [];
    for (const c of channels) if (this.source.has(c.name) || this.rpc.has(c.name)) ids.push(c.id);
    return ids;
  }

  peerBuffered(c: Connection, delta: number): boolean {
    const total = (this.peerBytes.get(c.ip) ?? 0) + delta;
    if (total <= 0) this.peerBytes.delete(c.ip);
    else this.peerBytes.set(c.ip, total);
    const cap = this.config.maxBufferedBytesPerPeer;
    if (delta <= 0 || total <= cap) return true;
    this.counters.refusals++;
    if (!this.bytesRefusedIps.has(c.ip)) {
      this.bytesRefusedIps.add(c.ip);
      this.logger.warn(
        { peer: c.ip, bufferedBytes: total, limit: cap },
        "PVA connection closed: per-peer buffered bytes limit",
      );
    }
    return false;
  }

  connectionClosed(c: Connection): void {
    if (!this.conns.delete(c)) return;
    const n = (this.perIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) {
      this.perIp.delete(c.ip);
      this.refusedIps.delete(c.ip);
      this.bytesRefusedIps.delete(c.ip);
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

  /** Starts the search thread: UDP search, the loopback fan-out and beacons (docs/pva.md). */
  private async bindUdp(): Promise<void> {
    const entries = [...this.config.beaconAddrs];
    if (this.config.autoBeaconAddrList) entries.push(...broadcastAddresses());
    // Port 0: the thread puts in the broadcast port it bound.
    const beaconDests = await resolveDests(entries, 0, this.logger);
    this.search = new SearchThread(
      this.source,
      this.rpc,
      { guid: this.guid, ignoreAddrs: this.config.ignoreAddrs },
      this.logger,
      this.searchWorker,
    );
    this._udpPort = await this.search.bind({
      addrs: this.bindAddrs(),
      port: this.config.broadcastPort,
      tcpPort: this._tcpPort,
      beaconDests,
      beaconPeriod: this.config.beaconPeriod,
    });
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
    // Replies are small and each one unblocks the client's next step: no Nagle delay.
    s.setNoDelay(true);
    c.start();
  }
}
