/**
 * Main-thread side of a plugin Worker: request/reply with timeouts, the heartbeat watchdog, and
 * routing of the worker's unsolicited messages (PV updates, logs, addPv) to the controller.
 */
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import {
  DEFAULT_HOST_TIMINGS,
  type HostEvents,
  type HostReply,
  type HostRequest,
  type HostTimings,
  type PluginHost,
  type PluginHostFactory,
} from "./host.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";

/** Variables never passed to a plugin's Worker. */
export const ALWAYS_HIDDEN_ENV = ["IOCMNG_API_TOKEN", "IOCMNG_GIT_TOKEN"] as const;

/** One plugin's Worker as seen from the main thread. */
export class PluginWorker implements PluginHost {
  /** Workers started and not yet ended, process-wide (diagnostics; tests check for leaks). */
  static live = 0;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: HostReply) => void; timer: ReturnType<typeof setTimeout> | null }
  >();
  private lastBeat = performance.now();
  private unresponsive = false;
  private ended = false;
  private readonly watchdog: ReturnType<typeof setInterval>;
  private readonly ready: Promise<void>;

  constructor(
    private readonly log: Logger,
    private readonly events: HostEvents,
    private readonly timings: HostTimings = DEFAULT_HOST_TIMINGS,
    /** Environment variables the plugin must not see (API token, git tokens). */
    hiddenEnv: readonly string[] = [],
  ) {
    // The worker sees the server's environment as it is now (Bun would otherwise give it the
    // process's initial environment), e.g. EPICS_CA_* for the plugin's libca client — minus the
    // secrets: plugin code is trusted to run, not to hold the API token or other repos' tokens.
    const env: Record<string, string> = {};
    const hidden = new Set([...ALWAYS_HIDDEN_ENV, ...hiddenEnv]);
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && !hidden.has(k)) env[k] = v;
    }
    this.worker = new Worker(new URL("./worker.ts", import.meta.url), { env });
    PluginWorker.live++;
    let readyResolve: () => void = () => {};
    this.ready = new Promise<void>((resolve) => {
      readyResolve = resolve;
    });
    this.worker.onmessage = (e: MessageEvent<FromWorker>) => this.receive(e.data, readyResolve);
    this.worker.addEventListener("error", (e: ErrorEvent) => {
      this.log.error({ err: e.message }, "plugin worker error");
    });
    this.worker.addEventListener("close", (e: Event) => {
      const code = (e as CloseEvent).code ?? 0;
      if (!this.ended) {
        this.ended = true;
        PluginWorker.live--;
        this.failPending("the plugin's worker ended");
        clearInterval(this.watchdog);
        this.log.error({ code }, "plugin worker ended unexpectedly");
        this.events.onExit(code);
      }
    });
    this.watchdog = setInterval(
      () => this.checkHeartbeat(),
      Math.max(50, Math.floor(this.timings.watchdogMs / 4)),
    );
    this.watchdog.unref?.();
  }

  /** A message from the worker: any message counts as a heartbeat. */
  private receive(m: FromWorker, readyResolve: () => void): void {
    this.lastBeat = performance.now();
    if (this.unresponsive) {
      this.unresponsive = false;
      this.events.onResponsive();
    }
    switch (m.t) {
      case "ready":
        readyResolve();
        break;
      case "hb":
        break;
      case "reply": {
        const p = this.pending.get(m.id);
        if (!p) break;
        this.pending.delete(m.id);
        if (p.timer) clearTimeout(p.timer);
        p.resolve({
          ok: m.ok,
          message: m.message,
          ...(m.step !== undefined ? { step: m.step } : {}),
          ...(m.data !== undefined ? { data: m.data } : {}),
        });
        break;
      }
      case "set":
        this.events.onSet(m.updates);
        break;
      case "addPv":
        this.events.onAddPv(m.name, m.def).then(
          (value) => this.post({ t: "reply", id: m.id, ok: true, message: "created", data: value }),
          (err: unknown) =>
            this.post({ t: "reply", id: m.id, ok: false, message: errorMessage(err) }),
        );
        break;
      case "log": {
        const obj: Record<string, unknown> = { ...m.bindings };
        if (m.err) obj.err = m.err;
        this.log[m.level](obj, m.msg);
        break;
      }
    }
  }

  /** The watchdog: no message for `watchdogMs` means the worker is blocked. */
  private checkHeartbeat(): void {
    if (this.ended || this.unresponsive) return;
    if (performance.now() - this.lastBeat > this.timings.watchdogMs) {
      this.unresponsive = true;
      this.log.error(
        { watchdogMs: this.timings.watchdogMs },
        "plugin unresponsive: no heartbeat (blocked in synchronous code?)",
      );
      this.events.onUnresponsive();
    }
  }

  /** Resolves when the worker runtime is up (rejects after the ready timeout). */
  async waitReady(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`plugin worker did not start within ${this.timings.readyTimeoutMs} ms`)),
        this.timings.readyTimeoutMs,
      );
    });
    try {
      await Promise.race([this.ready, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** True while heartbeats are missing. */
  get isUnresponsive(): boolean {
    return this.unresponsive;
  }

  /** True once the worker has ended (terminated or exited). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Sends a request and resolves with its reply; a timeout or the worker's end gives ok=false. */
  request(msg: HostRequest, timeoutMs?: number): Promise<HostReply> {
    if (this.ended) return Promise.resolve({ ok: false, message: "the plugin's worker has ended" });
    const id = this.nextId++;
    return new Promise<HostReply>((resolve) => {
      const timer =
        timeoutMs === undefined
          ? null
          : setTimeout(() => {
              this.pending.delete(id);
              resolve({ ok: false, message: `no answer from the plugin within ${timeoutMs} ms` });
            }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.post({ ...msg, id } as ToWorker);
    });
  }

  private post(msg: ToWorker): void {
    if (this.ended) return;
    try {
      this.worker.postMessage(msg);
    } catch (err) {
      this.log.error({ err }, "cannot send to plugin worker");
    }
  }

  private failPending(message: string): void {
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.resolve({ ok: false, message });
      this.pending.delete(id);
    }
  }

  /** Ends the worker at once (works even when it is stuck in a synchronous loop). */
  terminate(): void {
    if (this.ended) return;
    this.ended = true;
    PluginWorker.live--;
    clearInterval(this.watchdog);
    this.failPending("the plugin was stopped");
    this.worker.terminate();
  }
}

/** Starts a plugin host as a Bun Worker in this process. */
export const startWorkerHost: PluginHostFactory = (o) =>
  new PluginWorker(o.log, o.events, o.timings, o.hiddenEnv);
