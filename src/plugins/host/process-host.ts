/**
 * Server side of one plugin process: spawns the executable in plugin-host mode under the sandbox
 * (sandbox.ts, entry.ts), then speaks the same request/reply protocol as the Worker host did
 * (ids, timeouts, heartbeat watchdog, events onSet/onAddPv/onUnresponsive/onExit) over Bun's IPC
 * channel with "advanced" serialization (typed arrays cross as typed arrays).
 *
 * The process is the unit of containment: whatever the plugin does (a heap hog, `kill -9` through a
 * shell, process.exit, a fork loop) ends this process and its descendants, never the server.
 */
import { randomBytes } from "node:crypto";
import { chown, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Logger } from "pino";
import type {
  HostEvents,
  HostReply,
  HostRequest,
  HostTimings,
  PluginHost,
  PluginHostFactory,
} from "../host.ts";
import type { FromWorker, ToWorker } from "../protocol.ts";
import { SetDecoder } from "../set-batch.ts";
import { PluginCgroup } from "./cgroup.ts";
import { exitReason } from "./exit.ts";
import { killTree, recordHost, sessionMembers } from "./reap.ts";
import { runRoot } from "./run-root.ts";
import {
  defaultSandboxConfig,
  effectiveLimits,
  findShell,
  hostArgv,
  makeTraversable,
  pluginEnv,
  runtimeDirs,
  type SandboxConfig,
  type SandboxLimits,
} from "./sandbox.ts";
import { WarnWindow } from "./warn-window.ts";

export type { HostReply } from "../host.ts";

/** What to run and how confined. */
export interface ProcessOptions {
  /** Plugin name (logs, process title, private directory name). */
  name: string;
  sandbox: SandboxConfig;
  limits: SandboxLimits;
  /** Variables never passed even if listed (every `pat_env` name). */
  hiddenEnv?: readonly string[];
  /** Directories the plugin process must be able to read (its clone) under another uid. */
  codeDirs?: readonly string[];
  /** Environment to take the passed variables from (default process.env). */
  env?: Record<string, string | undefined>;
  /**
   * A spare (spare.ts): started before any plugin asks for it, not counted in `live` until
   * {@link PluginProcess.adopt} hands it to one.
   */
  spare?: boolean;
}

export { EndedHost, exitReason } from "./exit.ts";
export { runRoot } from "./run-root.ts";

const STDERR_KEEP = 2048;

/** One plugin's process as seen from the server. */
export class PluginProcess implements PluginHost {
  /** Plugin processes started and not yet ended, process-wide (tests check for leaks). */
  static live = 0;
  /** Window of the malformed-batch warning: one log line per plugin per window (tests shorten). */
  static warnWindowMs = 10_000;
  private readonly badBatches = new WarnWindow(PluginProcess.warnWindowMs, (n, why) =>
    this.log.warn(
      { count: n },
      n === 1 ? `setPv batch ignored: ${why}` : `${n} setPv batches ignored (last: ${why})`,
    ),
  );
  private proc: Subprocess | null = null;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (r: HostReply) => void; timer: ReturnType<typeof setTimeout> | null }
  >();
  private readonly outbox: ToWorker[] = [];
  /** PV names this process interned (one process per instance, so the table never resets). */
  private readonly setDecoder = new SetDecoder();
  private lastBeat = performance.now();
  private unresponsive = false;
  private ended = false;
  private fatal: string | null = null;
  private stderrTail = "";
  private home: string | null = null;
  private cgroup: PluginCgroup | null = null;
  /** Why we killed it (a limit), reported as the exit reason. */
  private killReason: string | null = null;
  /** Counted in `live` (a plugin's process, not an idle spare). */
  private counted = false;
  /** Work due before the plugin's code may load (an adopted spare: its clone made readable). */
  private bound: Promise<void> = Promise.resolve();
  private watchdog: ReturnType<typeof setInterval>;
  private readonly ready: Promise<void>;
  private readyResolve: () => void = () => {};
  private readyReject: (e: Error) => void = () => {};
  /** Resolves once the process has exited and its descendants and directory are gone. */
  readonly gone: Promise<void>;
  private goneResolve: () => void = () => {};

  constructor(
    private log: Logger,
    private events: HostEvents,
    private timings: HostTimings,
    private opts: ProcessOptions,
  ) {
    if (opts.spare !== true) this.count();
    this.ready = new Promise<void>((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    // waitReady() reports a failure; this keeps an unobserved one from being "unhandled".
    this.ready.catch(() => {});
    this.gone = new Promise<void>((r) => {
      this.goneResolve = r;
    });
    this.watchdog = setInterval(() => this.checkBeat(), Math.max(50, timings.watchdogMs / 4));
    this.watchdog.unref?.();
    this.spawn().catch((e: unknown) => {
      this.readyReject(e instanceof Error ? e : new Error(String(e)));
      this.finish();
    });
  }

  private count(): void {
    this.counted = true;
    PluginProcess.live++;
  }

  /**
   * Hands a spare to a plugin: from now on it logs, reports and is timed as that plugin's host.
   * The caller checked that it was started exactly as this plugin's process would be (spare.ts).
   */
  adopt(o: {
    log: Logger;
    events: HostEvents;
    timings: HostTimings;
    name: string;
    hiddenEnv?: readonly string[] | undefined;
    codeDirs?: readonly string[] | undefined;
  }): this {
    this.log = o.log;
    this.events = o.events;
    if (o.timings.watchdogMs !== this.timings.watchdogMs) {
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => this.checkBeat(), Math.max(50, o.timings.watchdogMs / 4));
      this.watchdog.unref?.();
    }
    this.timings = o.timings;
    this.opts = {
      ...this.opts,
      name: o.name,
      spare: false,
      ...(o.hiddenEnv ? { hiddenEnv: o.hiddenEnv } : {}),
      ...(o.codeDirs ? { codeDirs: o.codeDirs } : {}),
    };
    if (!this.ended) this.count();
    // Still starting: spawn() logs "plugin process started" under the plugin's name instead.
    if (this.proc !== null) {
      this.log.debug({ pid: this.pid, home: this.home }, "plugin runs in the spare process");
    }
    // The clone must be readable under the plugin's uid before `load` imports it.
    if (this.dropsPrivileges()) this.bound = this.reachable(o.codeDirs ?? []);
    return this;
  }

  private dropsPrivileges(): boolean {
    const { sandbox } = this.opts;
    return process.getuid?.() === 0 && sandbox.uid !== null && sandbox.gid !== null;
  }

  /** Adds the search bit to `dirs` and their parents (makeTraversable), logging what changed. */
  private async reachable(dirs: readonly string[]): Promise<void> {
    const changed = (await Promise.all(dirs.map((d) => makeTraversable(d)))).flat();
    if (changed.length > 0) this.log.info({ dirs: changed }, "made directories o+x for plugins");
  }

  /** The OS pid once spawned (tests, diagnostics). */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  private async spawn(): Promise<void> {
    const { sandbox, limits, name } = this.opts;
    const root = runRoot();
    await mkdir(root, { recursive: true, mode: 0o711 });
    const id = `${name}-${randomBytes(4).toString("hex")}`;
    const home = join(root, id);
    await mkdir(home, { mode: 0o700 });
    this.home = home;
    // terminate() may have come while we were creating the directory.
    if (this.ended) {
      await rm(home, { recursive: true, force: true }).catch(() => {});
      return;
    }
    const drop = this.dropsPrivileges();
    if (drop) {
      await chown(home, sandbox.uid as number, sandbox.gid as number);
      await this.reachable([root, ...runtimeDirs(), ...(this.opts.codeDirs ?? [])]);
    }
    const shell = await findShell();
    if (this.ended) {
      await rm(home, { recursive: true, force: true }).catch(() => {});
      return;
    }
    if (!shell) this.log.warn("no /bin/sh: the plugin process runs without its memory limit");
    this.cgroup = PluginCgroup.create(id, limits.processes, limits.memoryMiB);
    const argv = hostArgv(
      {
        name,
        parent: process.pid,
        uid: drop ? sandbox.uid : null,
        gid: drop ? sandbox.gid : null,
        limits,
        home,
        cgroup: this.cgroup?.pidsDir ?? null,
        memoryCgroup: this.cgroup?.memoryDir ?? null,
      },
      shell,
    );
    const env = pluginEnv(this.opts.env ?? process.env, {
      home,
      passEnv: sandbox.passEnv,
      hidden: this.opts.hiddenEnv ?? [],
    });
    const proc = Bun.spawn(argv, {
      env,
      cwd: home,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      // A process group (and session) of its own: a kill of the group reaches what it started.
      detached: true,
      serialization: "advanced",
      ipc: (m: FromWorker) => this.onMessage(m),
    });
    this.proc = proc;
    recordHost(root, proc.pid);
    this.log.debug({ pid: proc.pid, home }, "plugin process started");
    void this.drain(proc.stdout as ReadableStream<Uint8Array>, "stdout");
    void this.drain(proc.stderr as ReadableStream<Uint8Array>, "stderr");
    void proc.exited.then(() => this.onExited(proc));
    for (const m of this.outbox.splice(0)) this.post(m);
  }

  /** Reads a stream of the child to the end; keeps the tail of stderr for the exit reason. */
  private async drain(stream: ReadableStream<Uint8Array>, which: string): Promise<void> {
    const dec = new TextDecoder();
    let lines = 0;
    try {
      for await (const chunk of stream) {
        const text = dec.decode(chunk, { stream: true });
        if (which === "stderr") this.stderrTail = (this.stderrTail + text).slice(-STDERR_KEEP);
        // Raw output bypassing the plugin logger: a few lines go to the log, the rest is dropped.
        if (lines < 50) {
          lines++;
          this.log.warn({ stream: which }, text.slice(0, 500).trimEnd());
        }
      }
    } catch {
      // The process died: nothing more to read.
    }
  }

  private onMessage(m: FromWorker): void {
    this.lastBeat = performance.now();
    if (this.unresponsive) {
      this.unresponsive = false;
      this.events.onResponsive();
    }
    switch (m.t) {
      case "ready":
        this.readyResolve();
        break;
      case "hb":
        break;
      case "fatal":
        this.fatal = String(m.reason);
        break;
      case "reply": {
        const p = this.pending.get(m.id);
        if (!p) break;
        this.pending.delete(m.id);
        if (p.timer) clearTimeout(p.timer);
        p.resolve({
          ok: m.ok === true,
          message: String(m.message),
          ...(m.step !== undefined ? { step: String(m.step) } : {}),
          ...(m.data !== undefined ? { data: m.data } : {}),
        });
        break;
      }
      case "setb": {
        const updates = this.setDecoder.decode(m);
        if (typeof updates === "string") this.badBatches.note(updates);
        else this.events.onSet(updates);
        break;
      }
      case "addPv":
        this.events.onAddPv(m.name, m.def).then(
          (value) => this.post({ t: "reply", id: m.id, ok: true, message: "created", data: value }),
          (err: unknown) =>
            this.post({
              t: "reply",
              id: m.id,
              ok: false,
              message: err instanceof Error ? err.message : String(err),
            }),
        );
        break;
      case "log": {
        const obj: Record<string, unknown> = { ...m.bindings };
        if (m.err) obj.err = m.err;
        const level = ["trace", "debug", "info", "warn", "error", "fatal"].includes(m.level)
          ? m.level
          : "info";
        this.log[level](obj, String(m.msg));
        break;
      }
    }
  }

  private checkBeat(): void {
    if (this.ended || !this.proc) return;
    const hit = this.cgroup?.hitLimit() ?? null;
    if (hit !== null) {
      // A fork failed at pids.max (a process/thread loop: end it rather than let it spin on
      // EAGAIN), or the memory cgroup's OOM killer took one of its processes (maybe not the host).
      this.killReason = this.limitReason(hit);
      this.log.error(this.killReason);
      this.proc.kill("SIGKILL");
      return;
    }
    if (this.unresponsive) return;
    if (performance.now() - this.lastBeat > this.timings.watchdogMs) {
      this.unresponsive = true;
      this.log.error(
        { watchdogMs: this.timings.watchdogMs },
        "plugin unresponsive: no heartbeat (blocked in synchronous code?)",
      );
      this.events.onUnresponsive();
    }
  }

  /** MESSAGE for a cgroup limit the plugin hit. */
  private limitReason(hit: "processes" | "memory"): string {
    const { limits } = this.opts;
    return hit === "memory"
      ? `memory limit (${limits.memoryMiB} MiB) reached (cgroup)`
      : `process limit (${limits.processes}) reached`;
  }

  private onExited(proc: Subprocess): void {
    // The OOM killer may have taken the host itself before the watchdog looked.
    const hit = this.killReason === null ? (this.cgroup?.hitLimit() ?? null) : null;
    const reason =
      this.killReason ??
      (hit !== null ? this.limitReason(hit) : null) ??
      exitReason(
        proc.exitCode,
        proc.signalCode === null ? null : String(proc.signalCode),
        this.fatal,
        this.opts.limits,
        this.stderrTail,
      );
    const byUs = this.ended;
    this.finish();
    if (!byUs) {
      this.log.error({ code: proc.exitCode, signal: proc.signalCode }, reason);
      this.events.onExit(proc.exitCode ?? 128, reason);
    }
  }

  /** Marks the end once; kills what the process left, removes its directory. */
  private finish(): void {
    const first = !this.ended;
    this.ended = true;
    clearInterval(this.watchdog);
    this.badBatches.flush();
    this.failPending("the plugin's process ended");
    this.readyReject(new Error("the plugin's process ended before it was ready"));
    if (!first && this.home === null) return;
    const pid = this.proc?.pid;
    const home = this.home;
    this.home = null;
    const cgroup = this.cgroup;
    this.cgroup = null;
    if (first && this.counted) PluginProcess.live--;
    void (async () => {
      // The cgroup holds everything the plugin started; the /proc walk covers hosts without one.
      cgroup?.destroy();
      if (pid !== undefined) {
        killTree(pid);
        // Anything that stayed in its session after the host itself died (crash, pdeathsig).
        for (const p of sessionMembers(pid)) killTree(p);
      }
      if (home) await rm(home, { recursive: true, force: true }).catch(() => {});
    })().finally(() => this.goneResolve());
  }

  /** Resolves when the process is up (rejects after the ready timeout or if it died). */
  async waitReady(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`plugin process did not start within ${this.timings.readyTimeoutMs} ms`),
          ),
        this.timings.readyTimeoutMs,
      );
    });
    try {
      await Promise.race([Promise.all([this.ready, this.bound]), timeout]);
    } catch (e) {
      const tail = this.stderrTail.trim().split("\n").slice(-2).join("; ");
      throw new Error(
        `${e instanceof Error ? e.message : e}${tail ? ` (${tail.slice(0, 300)})` : ""}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  get isUnresponsive(): boolean {
    return this.unresponsive;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Sends a request and resolves with its reply; a timeout or the process's end gives ok=false. */
  request(msg: HostRequest, timeoutMs?: number): Promise<HostReply> {
    if (this.ended)
      return Promise.resolve({ ok: false, message: "the plugin's process has ended" });
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
    if (!this.proc) {
      this.outbox.push(msg);
      return;
    }
    try {
      this.proc.send(msg);
    } catch (err) {
      this.log.error({ err }, "cannot send to the plugin process");
    }
  }

  private failPending(message: string): void {
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      p.resolve({ ok: false, message });
      this.pending.delete(id);
    }
  }

  /** Kills the process and everything it started, at once (works on a hung plugin too). */
  terminate(): void {
    if (this.ended) return;
    this.finish();
  }
}

/** The {@link PluginHostFactory} of sandboxed plugin processes (host-default.ts). */
export const startProcessHost: PluginHostFactory = (o) => {
  const sandbox = o.sandbox ?? defaultSandboxConfig();
  return new PluginProcess(o.log, o.events, o.timings, {
    name: o.name ?? "plugin",
    sandbox,
    limits: o.limits ?? effectiveLimits(sandbox, undefined),
    hiddenEnv: o.hiddenEnv,
    ...(o.codeDirs ? { codeDirs: o.codeDirs } : {}),
  });
};
