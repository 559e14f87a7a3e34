/**
 * Main-thread side of the PVA server's search thread (pva-search-worker.ts): starts the Worker,
 * keeps its copy of the served names (PVs and RPC handlers) in step, binds its sockets, relays its
 * logs and reads its counters from shared memory (so `PvaServer.stats()` stays synchronous). A
 * thread that ends without stop() is started again on the same port with the current names.
 */
import type { Logger } from "pino";
import type { PvSource } from "../../pv/source.ts";
import type { RpcRegistry } from "./rpc.ts";
import {
  BAD_DATAGRAMS,
  BEACONS_SENT,
  type FromSearchThread,
  SEARCH_COUNTER_SLOTS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
  type ToSearchThread,
} from "./search-protocol.ts";

export type SearchBinding = Omit<Extract<ToSearchThread, { t: "bind" }>, "t">;

export interface SearchCounters {
  searchDatagrams: number;
  searchReplies: number;
  badDatagrams: number;
  beaconsSent: number;
}

export class SearchThread {
  private worker: Worker;
  private readonly shared = new SharedArrayBuffer(SEARCH_COUNTER_SLOTS * 8);
  private readonly counters = new Float64Array(this.shared);
  private ops: string[] = [];
  private opsQueued = false;
  private names: MessagePort | null = null;
  private opsPosted = new Int32Array(new SharedArrayBuffer(4));
  private readonly unwatch: (() => void)[];
  private waiting: ((m: FromSearchThread) => void) | null = null;
  private binding: SearchBinding | null = null;
  private stopped = false;
  private readonly rpcNames = new Set<string>();

  /** Starts the thread with the current names and follows the source and the RPC registry. */
  constructor(
    private readonly source: PvSource,
    private readonly rpc: RpcRegistry,
    private readonly opts: { guid: Uint8Array; ignoreAddrs: string[] },
    private readonly log: Logger,
  ) {
    // Subscribe and snapshot in one synchronous step: no change can fall between the two.
    this.unwatch = [
      source.onAdd((pv) => this.queueOp(`+${pv.name}`)),
      source.onRemove((pv) => this.queueOp(`-${pv.name}`)),
      rpc.onChange((name, added) => {
        // A handler replacing another under the same name is no new name to the thread.
        if (added === this.rpcNames.has(name)) return;
        if (added) this.rpcNames.add(name);
        else this.rpcNames.delete(name);
        this.queueOp(`${added ? "+" : "-"}${name}`);
      }),
    ];
    for (const n of rpc.names()) this.rpcNames.add(n);
    this.worker = this.spawn();
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
    const c = this.counters;
    return {
      searchDatagrams: c[SEARCH_DATAGRAMS] ?? 0,
      searchReplies: c[SEARCH_REPLIES] ?? 0,
      badDatagrams: c[BAD_DATAGRAMS] ?? 0,
      beaconsSent: c[BEACONS_SENT] ?? 0,
    };
  }

  /** Closes the sockets (the port is free when this resolves, bounded) and ends the thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unwatch) u();
    this.names?.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
    });
    await Promise.race([this.request({ t: "close" }), timeout]);
    clearTimeout(timer);
    this.worker.terminate();
  }

  /** @internal Tests: ends the thread as a crash would (a new one is started). */
  crashForTest(): void {
    this.worker.terminate();
  }

  private spawn(): Worker {
    const w = new Worker(new URL("./pva-search-worker.ts", import.meta.url), { smol: true });
    // The server's sockets and timers decide the process's lifetime, not this thread.
    w.unref();
    w.onmessage = (e: MessageEvent<FromSearchThread>) => this.onMessage(e.data);
    w.addEventListener("error", (e: ErrorEvent) =>
      this.log.error({ err: e.message }, "PVA search thread error"),
    );
    w.addEventListener("close", () => this.onClose(w));
    this.ops = [];
    this.names?.close();
    const channel = new MessageChannel();
    this.names = channel.port1;
    this.opsPosted = new Int32Array(new SharedArrayBuffer(4));
    const init: ToSearchThread = {
      t: "init",
      snapshot: [...this.source.names(), ...this.rpc.names()],
      guid: this.opts.guid,
      ignoreAddrs: this.opts.ignoreAddrs,
      counters: this.shared,
      names: channel.port2,
      opsPosted: this.opsPosted.buffer,
    };
    w.postMessage(init, [channel.port2]);
    return w;
  }

  private onClose(w: Worker): void {
    if (w !== this.worker) return;
    const waiter = this.waiting;
    this.waiting = null;
    if (this.stopped) {
      waiter?.({ t: "closed" });
      return;
    }
    this.log.error("PVA search thread ended unexpectedly; restarting it");
    waiter?.({ t: "bindError", message: "the search thread ended" });
    this.worker = this.spawn();
    const b = this.binding;
    if (b === null) return;
    this.bind(b).catch((e: unknown) =>
      this.log.error(
        { err: e instanceof Error ? e.message : String(e) },
        "PVA search thread restarted but could not bind; UDP searches are not answered",
      ),
    );
  }

  private onMessage(m: FromSearchThread): void {
    if (m.t === "log") {
      this.log[m.level](m.detail ?? {}, m.msg);
      return;
    }
    const w = this.waiting;
    this.waiting = null;
    w?.(m);
  }

  /** One request at a time; a new one (stop() during a bind) settles the one still waiting. */
  private request(m: ToSearchThread): Promise<FromSearchThread> {
    this.flushOps();
    const prev = this.waiting;
    this.waiting = null;
    prev?.({ t: "bindError", message: `superseded by a "${m.t}" request` });
    if (this.stopped && m.t !== "close")
      return Promise.resolve({ t: "bindError", message: "the PVA server is stopping" });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(m);
    });
  }

  private queueOp(op: string): void {
    this.ops.push(op);
    if (this.opsQueued) return;
    this.opsQueued = true;
    // One message per burst of changes (a plugin adds its PVs in one go).
    queueMicrotask(this.flushOps);
  }

  private readonly flushOps = (): void => {
    this.opsQueued = false;
    if (this.ops.length === 0) return;
    const ops = this.ops;
    this.ops = [];
    // Message first, then the count: the thread reads the port only once the count says so.
    this.names?.postMessage(ops);
    Atomics.add(this.opsPosted, 0, 1);
  };
}
