/**
 * Main-thread side of the CA server's search thread (search-worker.ts): starts the Worker, keeps
 * its copy of the served names in step with the registry, binds its sockets, relays its logs and
 * reads its counters from shared memory (so `CaServer.stats()` stays synchronous).
 */
import type { Logger } from "pino";
import type { PvSource } from "../../pv/source.ts";
import {
  BAD_DATAGRAMS,
  type FromSearchThread,
  type NameOps,
  REPLIES_DROPPED,
  SEARCH_COUNTER_SLOTS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
  type ToSearchThread,
} from "./search-protocol.ts";

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
export class SearchThread {
  private worker: Worker;
  private readonly shared = new SharedArrayBuffer(SEARCH_COUNTER_SLOTS * 8);
  private readonly counters = new Float64Array(this.shared);
  private ops: string[] = [];
  private opsQueued = false;
  /** Where registry changes go (a fresh channel per thread, see search-protocol.ts). */
  private names: MessagePort | null = null;
  private opsPosted = new Int32Array(new SharedArrayBuffer(4));
  private readonly unwatch: (() => void)[];
  private waiting: ((m: FromSearchThread) => void) | null = null;
  private binding: SearchBinding | null = null;
  private tcpPort = 0;
  private stopped = false;

  /** Starts the thread with the registry's names and follows the registry from now on. */
  constructor(
    private readonly registry: PvSource,
    private readonly opts: { ignoreAddrs: string[]; maxNameLength: number },
    private readonly log: Logger,
  ) {
    // Subscribe and snapshot in one synchronous step: no change can fall between the two.
    this.unwatch = [
      registry.onAdd((pv) => this.queueOp(`+${pv.name}`)),
      registry.onRemove((pv) => this.queueOp(`-${pv.name}`)),
    ];
    this.worker = this.spawn();
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

  /** Current counters. */
  stats(): SearchCounters {
    const c = this.counters;
    return {
      searchDatagrams: c[SEARCH_DATAGRAMS] ?? 0,
      searchReplies: c[SEARCH_REPLIES] ?? 0,
      badDatagrams: c[BAD_DATAGRAMS] ?? 0,
      repliesDropped: c[REPLIES_DROPPED] ?? 0,
    };
  }

  /** Closes the sockets and ends the thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unwatch) u();
    this.names?.close();
    // Close the sockets first and wait for it, so the port is free when stop() resolves (bounded:
    // a wedged thread is terminated anyway; the timer is cleared so it cannot hold the process).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
    });
    await Promise.race([this.request({ t: "close" }), timeout]);
    clearTimeout(timer);
    this.worker.terminate();
  }

  /** @internal Tests: ends the thread as a crash would (the server starts a new one). */
  crashForTest(): void {
    this.worker.terminate();
  }

  private spawn(): Worker {
    const w = new Worker(new URL("./search-worker.ts", import.meta.url), { smol: true });
    // The server's sockets and timers decide the process's lifetime, not this thread.
    w.unref();
    w.onmessage = (e: MessageEvent<FromSearchThread>) => this.onMessage(e.data);
    w.addEventListener("error", (e: ErrorEvent) =>
      this.log.error({ err: e.message }, "CA search thread error"),
    );
    w.addEventListener("close", () => this.onClose(w));
    this.ops = [];
    this.names?.close();
    const channel = new MessageChannel();
    this.names = channel.port1;
    this.opsPosted = new Int32Array(new SharedArrayBuffer(4));
    const init: ToSearchThread = {
      t: "init",
      snapshot: [...this.registry.names()],
      ignoreAddrs: this.opts.ignoreAddrs,
      maxNameLength: this.opts.maxNameLength,
      counters: this.shared,
      names: channel.port2,
      opsPosted: this.opsPosted.buffer,
    };
    w.postMessage(init, [channel.port2]);
    return w;
  }

  /** A thread that ends without stop() is restarted on the same port with the current names. */
  private onClose(w: Worker): void {
    if (w !== this.worker) return;
    if (this.stopped) {
      const waiter = this.waiting;
      this.waiting = null;
      waiter?.({ t: "closed" });
      return;
    }
    this.log.error("CA search thread ended unexpectedly; restarting it");
    const waiter = this.waiting;
    this.waiting = null;
    waiter?.({ t: "bindError", message: "the search thread ended" });
    this.worker = this.spawn();
    const b = this.binding;
    if (b === null) return;
    this.bind(b, this.tcpPort).catch((e: unknown) =>
      this.log.error(
        { err: e instanceof Error ? e.message : String(e) },
        "CA search thread restarted but could not bind; searches are not answered",
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
      return Promise.resolve({ t: "bindError", message: "the CA server is stopping" });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker.postMessage(m);
    });
  }

  private post(m: ToSearchThread): void {
    this.flushOps();
    this.worker.postMessage(m);
  }

  private queueOp(op: string): void {
    this.ops.push(op);
    if (this.opsQueued) return;
    this.opsQueued = true;
    // One message per burst of registry changes (a plugin adds its PVs in one go).
    queueMicrotask(this.flushOps);
  }

  private readonly flushOps = (): void => {
    this.opsQueued = false;
    if (this.ops.length === 0) return;
    const ops: NameOps = this.ops;
    this.ops = [];
    // Message first, then the count: the thread only reads the port once the count says so.
    this.names?.postMessage(ops);
    Atomics.add(this.opsPosted, 0, 1);
  };
}
