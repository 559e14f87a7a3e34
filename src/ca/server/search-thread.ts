/**
 * Main-thread side of the CA server's search thread (search-worker.ts): starts the Worker, keeps
 * its copy of the served names in step with the registry, binds its sockets, relays its logs and
 * reads its counters from shared memory (so `CaServer.stats()` stays synchronous). The scaffolding
 * is shared with the PVA server (src/common/search-thread-host.ts); this file adds CA's messages.
 */
import type { Logger } from "pino";
import type { NameMirrorInit } from "../../common/name-mirror.ts";
import { SearchThreadHost } from "../../common/search-thread-host.ts";
import type { SearchWorker } from "../../common/search-worker.ts";
import type { PvSource } from "../../pv/source.ts";
import { REPLIES_DROPPED, SEARCH_COUNTER_SLOTS, type ToSearchThread } from "./search-protocol.ts";

/** Counters of the search responder. */
export interface SearchCounters {
  searchDatagrams: number;
  searchReplies: number;
  badDatagrams: number;
  /** Reply datagrams that could not be sent at all; the client searches again. */
  repliesDropped: number;
}

/** Where and how the search sockets are bound. */
export interface SearchBinding {
  addrs: string[];
  port: number;
  mcastGroups: string[];
}

/** The search thread of one CA server. */
export class SearchThread extends SearchThreadHost<ToSearchThread> {
  private binding: SearchBinding | null = null;
  private tcpPort = 0;

  /**
   * Starts the thread with the registry's names and follows the registry from now on; in
   * `worker` when given (shared with the PVA server), else in a Worker of its own.
   */
  constructor(
    private readonly registry: PvSource,
    private readonly opts: { ignoreAddrs: string[]; maxNameLength: number },
    log: Logger,
    worker?: SearchWorker,
  ) {
    super("CA", SEARCH_COUNTER_SLOTS, "searches are not answered", log, worker);
    // Subscribe and snapshot in one synchronous step: no change can fall between the two.
    this.start([
      registry.onAdd((pv) => this.queue(`+${pv.name}`)),
      registry.onRemove((pv) => this.queue(`-${pv.name}`)),
    ]);
  }

  /** Binds the search sockets (closing any bound before); resolves with the UDP port. */
  async bind(binding: SearchBinding, tcpPort: number): Promise<number> {
    this.binding = binding;
    this.tcpPort = tcpPort;
    const reply = await this.request({ t: "bind", ...binding, tcpPort });
    if (reply.t === "bound") return reply.udpPort;
    throw new Error(reply.t === "bindError" ? reply.message : `unexpected reply ${reply.t}`);
  }

  /** Sets the TCP port search replies advertise (searches wait unanswered while it is 0). */
  setTcpPort(port: number): void {
    this.tcpPort = port;
    this.post({ t: "tcpPort", port });
  }

  /** Warms the search path up on synthetic datagrams in the thread (search-warmup.ts). */
  warmUp(datagrams: number): void {
    this.post({ t: "warmup", datagrams });
  }

  /** Current counters. */
  stats(): SearchCounters {
    return { ...this.searchCounts(), repliesDropped: this.counters[REPLIES_DROPPED] ?? 0 };
  }

  protected sessionModule(): string {
    return new URL("./search-worker.ts", import.meta.url).href;
  }

  protected snapshot(): string[] {
    return [...this.registry.names()];
  }

  protected init(mirror: NameMirrorInit, counters: SharedArrayBuffer): ToSearchThread {
    const { ignoreAddrs, maxNameLength } = this.opts;
    return { t: "init", ...mirror, ignoreAddrs, maxNameLength, counters };
  }

  /** A replacement binds the same addresses and advertises the TCP port of the moment. */
  protected rebind(): Promise<number> | null {
    return this.binding === null ? null : this.bind(this.binding, this.tcpPort);
  }

  protected closeMessage(): ToSearchThread {
    return { t: "close" };
  }
}
