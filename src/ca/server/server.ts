/**
 * The CA server: binds the UDP search port and the TCP circuit port, sends beacons, accepts
 * circuits, and ties the PV registry to them (PvEntry fan-out, SERVER_DISCONN on removal).
 */

import type dgram from "node:dgram";
import type { Socket, TCPSocketListener } from "bun";
import type { Logger } from "pino";
import type { SearchWorker } from "../../common/search-worker.ts";
import type { AccessPolicy } from "../../pv/access.ts";
import type { Pv } from "../../pv/pv.ts";
import type { PvSource } from "../../pv/source.ts";
import { Circuit } from "./circuit.ts";
import { type CaServerConfig, resolveCaConfig } from "./config.ts";
import { InUseCount, PvEntry } from "./fanout.ts";
import { FlushScheduler } from "./flush.ts";
import { type CaCounters, CircuitHub, type CircuitSocketData, newCaCounters } from "./host.ts";
import { NameIndex } from "./names.ts";
import { SearchThread } from "./search-thread.ts";
import {
  type BeaconDest,
  Beacons,
  bindUdp,
  broadcastAddresses,
  resolveBeaconDests,
} from "./udp.ts";
import { type WarmupOptions, type WarmupReport, warmUpCircuits } from "./warmup.ts";

/** Figures returned by CaServer.stats(): the circuits' running counters plus the server's own. */
export interface CaServerStats extends CaCounters {
  circuits: number;
  channels: number;
  subscriptions: number;
  /** PVs with at least one open channel. */
  pvsInUse: number;
  /** Bytes waiting to be sent, summed over circuits (bounded by coalescing and read pausing). */
  queuedBytes: number;
  circuitsRefused: number;
  searchDatagrams: number;
  searchReplies: number;
  badDatagrams: number;
  /** Search reply datagrams that could not be sent (neither directly nor queued). */
  searchRepliesDropped: number;
  beaconsSent: number;
}

/** Native Channel Access server for the PVs of a registry. */
export class CaServer {
  readonly registry: PvSource;
  readonly logger: Logger;
  readonly config: CaServerConfig;
  /** Access security and the audit trail; null = each PV's own rights, no audit. */
  readonly access: AccessPolicy | null;
  readonly counters: CaCounters = newCaCounters();
  private _tcpPort = 0;
  private _udpPort = 0;
  private listeners: TCPSocketListener<CircuitSocketData>[] = [];
  private beaconSocket: dgram.Socket | null = null;
  private beacons: Beacons | null = null;
  /** Answers UDP searches on a thread of its own (search-worker.ts). */
  private search: SearchThread | null = null;
  /** The search Worker to run that thread in, when shared with another server. */
  private readonly searchWorker: SearchWorker | undefined;
  private readonly circuits = new Set<Circuit>();
  private readonly perIp = new Map<string, number>();
  private readonly refusedIps = new Set<string>();
  private circuitsRefused = 0;
  /** Every served PV's entry, found by name bytes (CREATE_CHAN, TCP search). */
  private readonly byName = new NameIndex<PvEntry>();
  /** PVs with at least one open channel. */
  private readonly inUse = new InUseCount();
  private readonly flusher = new FlushScheduler<Circuit>();
  private unwatch: (() => void) | null = null;
  private unwatchAccess: (() => void) | null = null;
  private state: "new" | "starting" | "running" | "stopped" = "new";
  /** What the circuits see of this server (host.ts). */
  private readonly hub: CircuitHub;

  /** Creates a server; nothing is bound until start(). Throws CaConfigError for a bad config. */
  constructor(opts: {
    registry: PvSource;
    logger: Logger;
    config?: Partial<CaServerConfig>;
    access?: AccessPolicy | null;
    /** Run the search thread in this Worker (shared with the PVA server); none: one of its own. */
    searchWorker?: SearchWorker;
  }) {
    this.registry = opts.registry;
    this.searchWorker = opts.searchWorker;
    this.access = opts.access ?? null;
    this.logger = opts.logger.child({ component: "ca-server" });
    this.config = resolveCaConfig(opts.config);
    this.hub = new CircuitHub(
      this.config,
      this.logger,
      this.counters,
      this.access,
      this.byName,
      this.flusher,
      (c) => this.circuitClosed(c),
    );
  }

  /** TCP port circuits connect to (advertised in search replies and beacons). */
  get tcpPort(): number {
    return this._tcpPort;
  }

  /** UDP port searches are answered on. */
  get udpPort(): number {
    return this._udpPort;
  }

  /** Binds UDP and TCP and starts beacons; rejects with a clear error if a socket can't be bound. */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`CA server already ${this.state}`);
    this.state = "starting";
    this.indexRegistry();
    // Rights may change under live channels (reload, a CALC input): circuits re-send ACCESS_RIGHTS.
    this.unwatchAccess = this.access?.onChange(() => this.accessChanged()) ?? null;
    try {
      await this.bind();
    } catch (e) {
      this.unwatch?.();
      this.unwatch = null;
      this.closeSockets();
      await this.search?.stop();
      this.state = "stopped";
      throw e;
    }
    await this.startBeacons();
    if (this.stopRequested()) {
      // stop() ran while the beacon addresses were resolved: undo what was started since.
      this.beacons?.stop();
      this.closeSockets();
      throw new Error("CA server stopped while starting");
    }
    this.state = "running";
    this.logger.info(
      { tcpPort: this._tcpPort, udpPort: this._udpPort, interfaces: this.bindAddrs() },
      "CA server listening",
    );
  }

  // A method, not an inline test: TypeScript would keep start()'s narrowing of `state` across the
  // awaits, during which stop() may have run.
  private stopRequested(): boolean {
    return this.state === "stopped";
  }

  /** Closes sockets and every circuit. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    this.unwatch?.();
    this.unwatch = null;
    this.unwatchAccess?.();
    this.unwatchAccess = null;
    this.beacons?.stop();
    for (const c of [...this.circuits]) c.shutdown();
    this.closeSockets();
    await this.search?.stop();
  }

  /** Current counts and counters. */
  stats(): CaServerStats {
    let channels = 0;
    let subscriptions = 0;
    let queuedBytes = 0;
    for (const c of this.circuits) {
      channels += c.channelCount;
      subscriptions += c.subscriptionCount;
      queuedBytes += c.queuedBytes;
    }
    const s = this.search?.stats();
    return {
      circuits: this.circuits.size,
      channels,
      subscriptions,
      pvsInUse: this.inUse.n,
      queuedBytes,
      ...this.counters,
      circuitsRefused: this.circuitsRefused,
      searchDatagrams: s?.searchDatagrams ?? 0,
      searchReplies: s?.searchReplies ?? 0,
      badDatagrams: s?.badDatagrams ?? 0,
      searchRepliesDropped: s?.repliesDropped ?? 0,
      beaconsSent: this.beacons?.sent ?? 0,
    };
  }

  /**
   * Runs the CA hot paths on synthetic traffic (warmup.ts, search-warmup.ts) in idle slices, so
   * JSC has compiled them before the first real connect storm. Leaves no channel, PV or counter
   * behind; ends early if the server stops or a real client has a circuit open (from then on real
   * traffic does the compiling, and warm-up slices would only compete with it). The search
   * thread's half runs alongside (not awaited) and ends at the first real search.
   */
  warmUp(opts: WarmupOptions & { searchDatagrams?: number } = {}): Promise<WarmupReport> {
    if (this.state !== "running") throw new Error(`CA server is ${this.state}, not running`);
    // 4,000 datagrams take the search responder's `handle` to JSC's top tier at boot; with 1,000
    // that compile (~120 ms) fell into the warm storms 3–5 after a start (docs/ca-server.md).
    this.search?.warmUp(opts.searchDatagrams ?? 4000);
    return warmUpCircuits(this.config, this.logger, this._tcpPort, this.access, {
      ...opts,
      cancelled: () =>
        this.state !== "running" || this.circuits.size > 0 || (opts.cancelled?.() ?? false),
    });
  }

  /** @internal Tests: ends the search thread as a crash would (a new one takes over). */
  crashSearchThreadForTest(): void {
    this.search?.crashForTest();
  }

  /** Access rights may have changed: every circuit re-checks its channels. */
  private accessChanged(): void {
    for (const c of this.circuits) c.recheckAccess();
  }

  // A circuit closed (through the hub): forget it.
  private circuitClosed(c: Circuit): void {
    if (!this.circuits.delete(c)) return;
    const n = (this.perIp.get(c.ip) ?? 1) - 1;
    if (n <= 0) {
      this.perIp.delete(c.ip);
      this.refusedIps.delete(c.ip);
    } else this.perIp.set(c.ip, n);
    this.logger.debug({ peer: c.peer }, "CA circuit closed");
  }

  /** Keeps `byName` equal to the registry (snapshot and subscription in one synchronous step). */
  private indexRegistry(): void {
    const add = (pv: Pv) => this.byName.set(pv.name, new PvEntry(pv, this.inUse));
    for (const pv of this.registry.values()) add(pv);
    const offAdd = this.registry.onAdd(add);
    // Its channels get SERVER_DISCONN; a PV of the same name added later gets a fresh entry.
    const offRemove = this.registry.onRemove((pv) => this.byName.delete(pv.name)?.pvRemoved());
    this.unwatch = () => {
      offAdd();
      offRemove();
    };
  }

  private bindAddrs(): string[] {
    return this.config.intfAddrs.length > 0 ? this.config.intfAddrs : ["0.0.0.0"];
  }

  private listenTcp(port: number): void {
    const addrs = this.bindAddrs();
    let p = port;
    for (const hostname of addrs) {
      const l = Bun.listen<CircuitSocketData>({
        hostname,
        port: p,
        data: { circuit: null },
        socket: {
          open: (s) => this.onOpen(s),
          data: (s, d) => s.data.circuit?.onData(d),
          drain: (s) => s.data.circuit?.onDrain(),
          close: (s) => s.data.circuit?.onClose(),
          error: (s, err) => {
            this.logger.debug({ err, peer: s.data.circuit?.peer }, "CA circuit socket error");
          },
        },
      });
      this.listeners.push(l);
      p = l.port;
    }
    this._tcpPort = p;
    this.hub.tcpPort = p;
  }

  private async bind(): Promise<void> {
    const cfg = this.config;
    if (cfg.serverPort === 0) {
      // Random port (tests): take a free TCP port and bind UDP searches on the same number.
      let lastErr: unknown = null;
      for (let attempt = 0; attempt < 8; attempt++) {
        if (this.state === "stopped") throw new Error("CA server stopped while starting");
        this.listenTcp(0);
        try {
          await this.bindSearch(this._tcpPort, this._tcpPort);
          return;
        } catch (e) {
          lastErr = e;
          this.closeSockets();
        }
      }
      throw new Error(`CA server: could not bind a random TCP+UDP port pair: ${String(lastErr)}`);
    }
    try {
      await this.bindSearch(cfg.serverPort, 0);
    } catch (e) {
      throw new Error(
        `CA server: cannot bind UDP ${this.bindAddrs().join(",")}:${cfg.serverPort} for searches: ${(e as Error).message}`,
      );
    }
    try {
      this.listenTcp(cfg.serverPort);
    } catch (e) {
      // rsrv: if the TCP port is taken, serve on a random one and advertise it in search replies.
      for (const l of this.listeners) l.stop(true);
      this.listeners = [];
      this.logger.info(
        { port: cfg.serverPort, reason: (e as Error).message },
        "CA TCP port busy; using a random port",
      );
      try {
        this.listenTcp(0);
      } catch (e2) {
        throw new Error(`CA server: cannot listen on TCP: ${(e2 as Error).message}`);
      }
    }
    this.search?.setTcpPort(this._tcpPort);
  }

  /** Binds the search sockets on `port` (in the search thread, started on first use). */
  private async bindSearch(port: number, tcpPort: number): Promise<void> {
    const cfg = this.config;
    if (this.search === null) {
      this.search = new SearchThread(
        this.registry,
        { ignoreAddrs: [...cfg.ignoreAddrs], maxNameLength: cfg.maxNameLength },
        this.logger,
        this.searchWorker,
      );
    }
    const addrs = [...this.bindAddrs()];
    // A socket bound to a unicast IP does not receive broadcasts: add the interfaces' broadcast
    // addresses (rsrv does the same on non-Windows hosts).
    if (cfg.intfAddrs.length > 0 && !cfg.intfAddrs.includes("0.0.0.0")) {
      for (const b of broadcastAddresses(cfg.intfAddrs)) if (!addrs.includes(b)) addrs.push(b);
    }
    this._udpPort = await this.search.bind(
      { addrs, port, mcastGroups: [...cfg.mcastGroups] },
      tcpPort,
    );
  }

  private async startBeacons(): Promise<void> {
    const cfg = this.config;
    const dests: BeaconDest[] = [];
    if (cfg.autoBeaconAddrList) {
      for (const host of broadcastAddresses(cfg.intfAddrs))
        dests.push({ host, port: cfg.beaconPort });
    }
    try {
      dests.push(...(await resolveBeaconDests(cfg.beaconAddrs, cfg.beaconPort)));
    } catch (e) {
      this.logger.warn({ err: e }, "cannot resolve a beacon address; continuing without it");
    }
    if (dests.length === 0) return;
    const sock = await bindUdp("0.0.0.0", 0);
    sock.setBroadcast(true);
    try {
      sock.setMulticastTTL(cfg.mcastTtl);
    } catch {
      // Only matters for multicast destinations; some sandboxes refuse the option.
    }
    sock.unref();
    this.beaconSocket = sock;
    this.beacons = new Beacons(sock, dests, this._tcpPort, cfg.beaconPeriod, this.logger);
    this.beacons.start();
  }

  private onOpen(s: Socket<CircuitSocketData>): void {
    if (this.state === "stopped") {
      s.end();
      return;
    }
    const ip = s.remoteAddress;
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.config.maxCircuitsPerClient) {
      this.circuitsRefused++;
      if (!this.refusedIps.has(ip)) {
        this.refusedIps.add(ip);
        this.logger.warn(
          { peer: ip, limit: this.config.maxCircuitsPerClient },
          "CA circuit refused: too many circuits from this client",
        );
      }
      s.end();
      return;
    }
    this.perIp.set(ip, n + 1);
    s.setNoDelay(true);
    s.setKeepAlive(true);
    const c = new Circuit(s, this.hub);
    this.circuits.add(c);
    s.data = { circuit: c };
    this.logger.debug({ peer: c.peer }, "CA circuit opened");
  }

  private closeSockets(): void {
    for (const l of this.listeners) l.stop(true);
    this.listeners = [];
    if (this.beaconSocket !== null) {
      try {
        this.beaconSocket.close();
      } catch {
        // Already closed.
      }
      this.beaconSocket = null;
    }
  }
}
