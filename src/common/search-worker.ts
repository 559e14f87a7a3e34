/**
 * The one Worker that runs the search threads of the servers given it: the CA and PVA servers of
 * `iocmng serve` share one (src/server.ts), a server started alone has its own. Each server's
 * search thread is a session in it (search-thread-host.ts opens it): a MessagePort to its own
 * state, sockets and name mirror, loaded from the protocol's module (search-thread-worker.ts).
 *
 * Why one Worker: each Worker is a JS engine of its own (heap, compiled code, runtime modules);
 * PVA's own one cost the product ~6 MB PSS, and running its session in CA's Worker instead saves
 * ~2.5 MB of that (docs/benchmarks.md, "Product-path memory, step by step").
 * One thread answers both protocols' UDP searches, as it answers each protocol's bursts today:
 * the main thread's circuits and connections are what a storm must not queue behind.
 */
import type { Logger } from "pino";

/** Main thread → search-thread-worker.ts: run a protocol's session on `port`. */
export interface AttachMessage {
  t: "attach";
  /** URL of a module exporting `attachSearchSession(port: MessagePort): void`. */
  module: string;
  port: MessagePort;
}

export class SearchWorker {
  private worker: Worker | null = null;
  /** Main-thread end of each open session → what to call if the Worker ends under it. */
  private readonly sessions = new Map<MessagePort, () => void>();

  constructor(private readonly log: Logger) {}

  /** Sessions open now (the Worker runs while there is one). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /**
   * Opens a session of `module` in the Worker (started if none runs) and returns its port.
   * `onEnd` is called if the Worker ends without close(): the session is gone, open another.
   */
  open(module: string, onEnd: () => void): MessagePort {
    const w = this.worker ?? this.spawn();
    const { port1, port2 } = new MessageChannel();
    this.sessions.set(port1, onEnd);
    const attach: AttachMessage = { t: "attach", module, port: port2 };
    w.postMessage(attach, [port2]);
    return port1;
  }

  /** Ends a session (its sockets closed first); the Worker ends with the last one. */
  close(port: MessagePort): void {
    if (!this.sessions.delete(port)) return;
    port.close();
    if (this.sessions.size > 0) return;
    // Its close event then finds `worker` changed and calls no one back.
    this.worker?.terminate();
    this.worker = null;
  }

  /** @internal Tests: ends the Worker as a crash would (every session is opened again). */
  crashForTest(): void {
    this.worker?.terminate();
  }

  private spawn(): Worker {
    // Written as `new Worker(new URL("./x.ts", import.meta.url))` so `bun build --compile` embeds
    // it (scripts/build.ts lists it as an entrypoint).
    const w = new Worker(new URL("./search-thread-worker.ts", import.meta.url), { smol: true });
    // The servers' sockets and timers decide the process's lifetime, not this thread.
    w.unref();
    w.addEventListener("error", (e: ErrorEvent) =>
      this.log.error({ err: e.message }, "search thread error"),
    );
    w.addEventListener("close", () => this.onClose(w));
    this.worker = w;
    return w;
  }

  private onClose(w: Worker): void {
    if (w !== this.worker) return;
    this.worker = null;
    const ended = [...this.sessions];
    this.sessions.clear();
    for (const [port] of ended) port.close();
    for (const [, onEnd] of ended) onEnd();
  }
}
