/**
 * Main-thread scaffolding of a server's search thread, shared by the CA and PVA servers (each
 * extends it as its own `SearchThread`): opens the thread's session in a search Worker
 * (search-worker.ts; the CA and PVA servers of one process may share it) with a snapshot of the
 * served names (name-mirror.ts), relays its logs, reads its counters from shared memory (so
 * `stats()` stays synchronous), runs one request at a time, opens the session again when the
 * Worker ends without stop() (the protocol side binds it again on the same port) and closes it
 * within a bound.
 */
import type { Logger } from "pino";
import { NameFeed, type NameMirrorInit } from "./name-mirror.ts";
import { SearchWorker } from "./search-worker.ts";

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
  /** The Worker could not load the protocol's session module (search-thread-worker.ts). */
  | { t: "loadError"; message: string }
  | { t: "log"; level: "debug" | "warn" | "error"; msg: string; detail?: Record<string, string> };

/**
 * One search thread: its session of the moment in the search Worker, its name feed, its counters.
 * Each protocol's `SearchThread` extends it with its messages, its bind and its stats.
 */
export abstract class SearchThreadHost<To extends { t: string }> {
  /** The Worker the session runs in: shared when given, else this thread's own. */
  private readonly host: SearchWorker;
  /** The session's port (main-thread end); null once stopped. */
  private port: MessagePort | null = null;
  /** Set when the session module could not be loaded: every request fails with it. */
  private loadError: string | null = null;
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
   * @param worker the search Worker to run in (shared with other servers); none: one of its own.
   */
  constructor(
    private readonly label: string,
    counterSlots: number,
    private readonly rebindFailure: string,
    protected readonly log: Logger,
    worker?: SearchWorker,
  ) {
    this.shared = new SharedArrayBuffer(counterSlots * 8);
    this.counters = new Float64Array(this.shared);
    this.host = worker ?? new SearchWorker(log);
  }

  /**
   * URL of the protocol's session module (exporting `attachSearchSession`). Written as
   * `new URL("./x.ts", import.meta.url).href` in the protocol's own file, with `x.ts` an
   * entrypoint of the binary (scripts/build.ts), so the same URL finds it there.
   */
  protected abstract sessionModule(): string;
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
    this.port = this.open();
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
    if (this.loadError !== null)
      return Promise.resolve({ t: "bindError", message: this.loadError });
    if (this.stopped && m.t !== "close")
      return Promise.resolve({
        t: "bindError",
        message: `the ${this.label} server is stopping`,
      });
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.port?.postMessage(m);
    });
  }

  /** A message that needs no answer (name changes queued before it go first). */
  protected post(m: To): void {
    this.feed.flush();
    this.port?.postMessage(m);
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
    // The Worker ends with its last session (a wedged one too: terminated, not asked).
    const port = this.port;
    this.port = null;
    if (port) this.host.close(port);
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

  /**
   * @internal Tests: ends the search Worker as a crash would (a new one is started; every
   * session in it, the other protocol's too, is opened again).
   */
  crashForTest(): void {
    this.host.crashForTest();
  }

  /** Opens the session with the current names; the init message is the first it reads. */
  private open(): MessagePort {
    const port = this.host.open(this.sessionModule(), () => this.onEnd(port));
    port.onmessage = (e) => this.onMessage(e.data as FromSearchThread);
    const { init, transfer } = this.feed.open(this.snapshot());
    port.postMessage(this.init(init, this.shared), [transfer]);
    return port;
  }

  /** A Worker that ends without stop() is started again with the current names and bound again. */
  private onEnd(port: MessagePort): void {
    if (port !== this.port) return;
    const waiter = this.waiting;
    this.waiting = null;
    if (this.stopped) {
      waiter?.({ t: "closed" });
      return;
    }
    const label = this.label;
    this.log.error(`${label} search thread ended unexpectedly; restarting it`);
    waiter?.({ t: "bindError", message: "the search thread ended" });
    this.port = this.open();
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
    if (m.t === "loadError") {
      this.log.error({ err: m.message }, `${this.label} search thread cannot start`);
      this.loadError = m.message;
      const w = this.waiting;
      this.waiting = null;
      w?.({ t: "bindError", message: m.message });
      return;
    }
    const w = this.waiting;
    this.waiting = null;
    w?.(m);
  }
}
