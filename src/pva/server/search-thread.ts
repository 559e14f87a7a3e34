/**
 * Main-thread side of the PVA server's search thread (pva-search-worker.ts): starts the Worker,
 * keeps its copy of the served names (PVs and RPC handlers) in step, binds its sockets, relays its
 * logs and reads its counters from shared memory (so `PvaServer.stats()` stays synchronous). A
 * thread that ends without stop() is started again on the same port with the current names. The
 * scaffolding is shared with the CA server (src/common/search-thread-host.ts).
 */
import type { Logger } from "pino";
import type { NameMirrorInit } from "../../common/name-mirror.ts";
import { SearchThreadHost } from "../../common/search-thread-host.ts";
import type { SearchWorker } from "../../common/search-worker.ts";
import type { PvSource } from "../../pv/source.ts";
import type { RpcRegistry } from "./rpc.ts";
import { BEACONS_SENT, SEARCH_COUNTER_SLOTS, type ToSearchThread } from "./search-protocol.ts";

export type SearchBinding = Omit<Extract<ToSearchThread, { t: "bind" }>, "t">;

export interface SearchCounters {
  searchDatagrams: number;
  searchReplies: number;
  badDatagrams: number;
  beaconsSent: number;
}

export class SearchThread extends SearchThreadHost<ToSearchThread> {
  private binding: SearchBinding | null = null;
  private readonly rpcNames = new Set<string>();

  /**
   * Starts the thread with the current names and follows the source and the RPC registry; in
   * `worker` when given (shared with the CA server), else in a Worker of its own.
   */
  constructor(
    private readonly source: PvSource,
    private readonly rpc: RpcRegistry,
    private readonly opts: { guid: Uint8Array; ignoreAddrs: string[] },
    log: Logger,
    worker?: SearchWorker,
  ) {
    super("PVA", SEARCH_COUNTER_SLOTS, "UDP searches are not answered", log, worker);
    for (const n of rpc.names()) this.rpcNames.add(n);
    // Subscribe and snapshot in one synchronous step: no change can fall between the two.
    this.start([
      source.onAdd((pv) => this.queue(`+${pv.name}`)),
      source.onRemove((pv) => this.queue(`-${pv.name}`)),
      rpc.onChange((name, added) => {
        // A handler replacing another under the same name is no new name to the thread.
        if (added === this.rpcNames.has(name)) return;
        if (added) this.rpcNames.add(name);
        else this.rpcNames.delete(name);
        this.queue(`${added ? "+" : "-"}${name}`);
      }),
    ]);
  }

  /** Binds the UDP sockets and starts beacons; resolves with the UDP port. */
  async bind(binding: SearchBinding): Promise<number> {
    this.binding = binding;
    const reply = await this.request({ t: "bind", ...binding });
    if (reply.t === "bound") {
      // A replacement thread binds the port actually bound (port 0 asked for any).
      this.binding = { ...binding, port: reply.udpPort };
      return reply.udpPort;
    }
    throw new Error(reply.t === "bindError" ? reply.message : `unexpected reply ${reply.t}`);
  }

  stats(): SearchCounters {
    return { ...this.searchCounts(), beaconsSent: this.counters[BEACONS_SENT] ?? 0 };
  }

  protected sessionModule(): string {
    return new URL("./pva-search-worker.ts", import.meta.url).href;
  }

  protected snapshot(): string[] {
    return [...this.source.names(), ...this.rpc.names()];
  }

  protected init(mirror: NameMirrorInit, counters: SharedArrayBuffer): ToSearchThread {
    const { guid, ignoreAddrs } = this.opts;
    return { t: "init", ...mirror, guid, ignoreAddrs, counters };
  }

  protected rebind(): Promise<number> | null {
    return this.binding === null ? null : this.bind(this.binding);
  }

  protected closeMessage(): ToSearchThread {
    return { t: "close" };
  }
}
