/**
 * Main-thread scaffolding of a server's search thread, shared by the CA and PVA servers (each
 * extends it as its own `SearchThread`): starts the Worker with a snapshot of the served names
 * (name-mirror.ts), relays its logs, reads its counters from shared memory (so `stats()` stays
 * synchronous), runs one request at a time, replaces a thread that ends without stop() (the
 * protocol side binds it again on the same port) and closes it within a bound.
 */
import type { Logger } from "pino";
import { NameFeed, type NameMirrorInit } from "./name-mirror.ts";

/** Slots of the shared Float64Array of counters every search thread keeps (written by it only);
 * a protocol adds its own from slot 3 on. */
export const SEARCH_DATAGRAMS = 0;
export const SEARCH_REPLIES = 1;
export const BAD_DATAGRAMS = 2;

/** Search thread → main thread, the same for every protocol. */
export type FromSearchThread =
  | { t: "bound"; udpPort: number }
  | { t: "bindError"; message: string }
  | { t: "closed" }
  | { t: "log"; level: "debug" | "warn" | "error"; msg: string; detail?: Record<string, string> };

/**
 * One search thread: the Worker of the moment, its name feed, its counters. Each protocol's
 * `SearchThread` extends it with its messages, its bind and its stats.
 */
export abstract class SearchThreadHost<To extends { t: string }> {
  private worker: Worker | null = null;
  private readonly shared: SharedArrayBuffer;
  /** The thread's counters (written by the thread only). */
  readonly counters: Float64Array;
  private readonly feed = new NameFeed();
  private waiting: ((m: FromSearchThread) => void) | null = null;
  private stopped = false;
  /** Ends the protocol side's subscriptions to its name sources. */
  private unwatch: (() => void)[] = [];

  /**
   * @param label "CA" or "PVA", in log lines and errors.
   * @param counterSlots doubles in the shared counter array (slots are the protocol's).
   * @param rebindFailure what a failed rebind means, for the log ("searches are not answered").
   */
  constructor(
    private readonly label: string,
    counterSlots: number,
    private readonly rebindFailure: string,
    protected readonly log: Logger,
  ) {
    this.shared = new SharedArrayBuffer(counterSlots * 8);
    this.counters = new Float64Array(this.shared);
  }

  /**
   * Starts the Worker. Written as `new Worker(new URL("./x.ts", import.meta.url))` in the
   * protocol's own file so `bun build --compile` embeds it (scripts/build.ts).
   */
  protected abstract spawnWorker(): Worker;
  /** Every served name now (the subscriptions feeding queue() are set). */
  protected abstract snapshot(): string[];
  /** The "init" message, from the mirror's part and the shared counters. */
  protected abstract init(mirror: NameMirrorInit, counters: SharedArrayBuffer): To;
  /** Binds a replacement thread as the last one was; null when it was never bound. */
  protected abstract rebind(): Promise<unknown> | null;
  /** The protocol's `close` request. */
  protected abstract closeMessage(): To;

  /**
   * Starts the first thread. Call right after subscribing to the name sources, in the same
   * synchronous step (no change can fall between subscription and snapshot); stop() ends the
   * subscriptions through `unwatch`.
   */
  protected start(unwatch: (() => void)[]): void {
    this.unwatch = unwatch;
    this.worker = this.spawn();
  }

  /** Queues a name change ("+NAME" / "-NAME") for the thread. */
  protected queue(op: string): void {
    this.feed.queue(op);
  }

  /** One request at a time; a new one (stop() during a bind) settles the one still waiting. */
  protected request(m: To): Promise<FromSearchThread> {
    this.feed.flush();
    const prev = this.waiting;
    this.waiting = null;
    prev?.({ t: "bindError", message: `superseded by a "${m.t}" request` });
    if (this.stopped && m.t !== "close")
      return Promise.resolve({
        t: "bindError",
        message: `the ${this.label} server is stopping`,
      });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.worker?.postMessage(m);
    });
  }

  /** A message that needs no answer (name changes queued before it go first). */
  protected post(m: To): void {
    this.feed.flush();
    this.worker?.postMessage(m);
  }

  /** Closes the sockets (the port is free when this resolves, bounded) and ends the thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const u of this.unwatch) u();
    this.feed.close();
    // Bounded: a wedged thread is terminated anyway; the timer is cleared so it cannot hold
    // the process.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
    });
    await Promise.race([this.request(this.closeMessage()), timeout]);
    clearTimeout(timer);
    this.worker?.terminate();
  }

  /** The counters every protocol keeps. */
  protected searchCounts(): {
    searchDatagrams: number;
    searchReplies: number;
    badDatagrams: number;
  } {
    const c = this.counters;
    return {
      searchDatagrams: c[SEARCH_DATAGRAMS] ?? 0,
      searchReplies: c[SEARCH_REPLIES] ?? 0,
      badDatagrams: c[BAD_DATAGRAMS] ?? 0,
    };
  }

  /** @internal Tests: ends the thread as a crash would (a new one is started). */
  crashForTest(): void {
    this.worker?.terminate();
  }

  private spawn(): Worker {
    const w = this.spawnWorker();
    // The server's sockets and timers decide the process's lifetime, not this thread.
    w.unref();
    w.onmessage = (e: MessageEvent<FromSearchThread>) => this.onMessage(e.data);
    w.addEventListener("error", (e: ErrorEvent) =>
      this.log.error({ err: e.message }, `${this.label} search thread error`),
    );
    w.addEventListener("close", () => this.onClose(w));
    const { init, transfer } = this.feed.open(this.snapshot());
    w.postMessage(this.init(init, this.shared), [transfer]);
    return w;
  }

  /** A thread that ends without stop() is restarted with the current names and bound again. */
  private onClose(w: Worker): void {
    if (w !== this.worker) return;
    const waiter = this.waiting;
    this.waiting = null;
    if (this.stopped) {
      waiter?.({ t: "closed" });
      return;
    }
    const label = this.label;
    this.log.error(`${label} search thread ended unexpectedly; restarting it`);
    waiter?.({ t: "bindError", message: "the search thread ended" });
    this.worker = this.spawn();
    this.rebind()?.catch((e: unknown) =>
      this.log.error(
        { err: e instanceof Error ? e.message : String(e) },
        `${label} search thread restarted but could not bind; ${this.rebindFailure}`,
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
}
