/**
 * The plugin runtime: the plugin's code runs here, in a process of its own (the executable's
 * plugin-host mode, src/plugins/host/entry.ts imports this file once the process is confined),
 * talking to the server over Bun's IPC channel. The file name is historical (plugins ran in
 * Workers until December 2026).
 */
// First: the hardening must be in place before any plugin code is imported.
import "./worker-harden.ts";
import { setThreadName } from "../../ffi/libc.ts";
import { errorMessage } from "../common/errors.ts";
import {
  constructWithContext,
  type DeviceAccess,
  type PluginCaClient,
  setServices,
} from "../sdk/host.ts";
import * as sdk from "../sdk/index.ts";
import type { ToWorker } from "./protocol.ts";
import { exitIfOutOfMemory, log, reportDroppedLogs, send } from "./worker-log.ts";
import { flush, hasPendingUpdate, host, pvs, requests } from "./worker-pvs.ts";
import { chainWrite, withTimeout } from "./worker-writes.ts";

if (typeof process.send !== "function") {
  throw new Error("the plugin runtime runs only in a plugin process started by the server");
}

// --- State ----------------------------------------------------------------------------------------
let pluginClass: (new () => sdk.TaskBase | sdk.JobBase) | null = null;
let instance: sdk.TaskBase | sdk.JobBase | null = null;
let kind: "task" | "job" = "task";
let mode: "continuous" | "triggered" = "continuous";
let intervalMs = 1000;
let enabled = true;
let stopping = false;
let busy: Promise<void> | null = null;
let cycleCount = 0;
/** The runtime itself set STATUS ERROR after a failed execute (cleared by the next success). */
let runtimeError = false;
/** initialize() succeeded: the plugin may run (a failed start keeps the Worker for inspection). */
let started = false;

// --- Helpers for the task loop --------------------------------------------------------------------
function setStatus(s: string): void {
  if (pvs.has("STATUS")) host.setPv("STATUS", s);
}
function setMessage(m: string): void {
  if (pvs.has("MESSAGE")) host.setPv("MESSAGE", m);
}

async function runCycle(): Promise<void> {
  const task = instance as sdk.TaskBase;
  const run = (async () => {
    try {
      await task.execute();
      if (runtimeError && !stopping) {
        runtimeError = false;
        setStatus(enabled ? "RUN" : "PAUSED");
      }
    } catch (e) {
      exitIfOutOfMemory(e);
      runtimeError = true;
      setStatus("ERROR");
      setMessage(errorMessage(e));
      log("error", `execute() failed: ${errorMessage(e)}`, e);
      throw e;
    } finally {
      // The task may have restarted its count (2.7.9's RESET): continue from its value.
      cycleCount = task._cycleCount + 1;
      task._cycleCount = cycleCount;
      if (pvs.has("CYCLE_COUNT")) host.setPv("CYCLE_COUNT", cycleCount);
    }
  })();
  busy = run.then(
    () => {},
    () => {},
  );
  try {
    await run;
  } finally {
    busy = null;
  }
}

let wake: (() => void) | null = null;
let sleepTimer: ReturnType<typeof setTimeout> | null = null;

function wakeLoop(): void {
  if (sleepTimer) clearTimeout(sleepTimer);
  sleepTimer = null;
  const w = wake;
  wake = null;
  w?.();
}

function sleep(ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    wake = resolve;
    sleepTimer = setTimeout(wakeLoop, Math.max(0, ms));
  });
}

/** Fixed-rate loop without overlap: a late cycle starts at once, missed ones are not piled up. */
async function continuousLoop(): Promise<void> {
  let nextAt = performance.now();
  while (!stopping) {
    if (!enabled) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      nextAt = performance.now();
      continue;
    }
    try {
      await runCycle();
    } catch {
      // Already reported (STATUS/MESSAGE/log); the loop goes on at the next interval.
    }
    if (stopping) break;
    nextAt += intervalMs;
    const now = performance.now();
    if (nextAt < now) nextAt = now;
    await sleep(nextAt - now);
  }
}

// --- Message handling ------------------------------------------------------------------------------
type Reply = { ok: boolean; message: string; step?: string; data?: unknown };

function isSubclass(v: unknown, base: abstract new () => unknown): boolean {
  return typeof v === "function" && v.prototype instanceof base;
}

async function handleLoad(files: string[], requested: "task" | "job" | "auto"): Promise<Reply> {
  // A config-only plugin (2.7.9's declarative plugins): the framework's own task class runs it.
  if (files.length === 0) {
    if (requested === "job") {
      return {
        ok: false,
        step: "inheritance",
        message: "a plugin without code is a task, not a job",
      };
    }
    pluginClass = sdk.DeclarativeTask;
    return {
      ok: true,
      message: "no code: the built-in DeclarativeTask runs config.yaml",
      data: { className: "DeclarativeTask", kind: "task" },
    };
  }
  const found = new Map<unknown, string>();
  for (const file of files) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(file)) as Record<string, unknown>;
    } catch (e) {
      return { ok: false, step: "import", message: `${file}: ${errorMessage(e)}` };
    }
    for (const [exportName, v] of Object.entries(mod)) {
      if (isSubclass(v, sdk.TaskBase) || isSubclass(v, sdk.JobBase)) {
        if (!found.has(v)) found.set(v, (v as { name?: string }).name || exportName);
      }
    }
  }
  const tasks = [...found.keys()].filter((c) => isSubclass(c, sdk.TaskBase));
  const jobs = [...found.keys()].filter((c) => isSubclass(c, sdk.JobBase));
  const wanted: "task" | "job" =
    requested !== "auto" ? requested : jobs.length > 0 && tasks.length === 0 ? "job" : "task";
  const mine = wanted === "task" ? tasks : jobs;
  const other = wanted === "task" ? jobs : tasks;
  const base = wanted === "task" ? "TaskBase" : "JobBase";
  if (mine.length === 0) {
    if (other.length > 0) {
      const names = other.map((c) => found.get(c)).join(", ");
      const otherKind = wanted === "task" ? "job" : "task";
      return {
        ok: false,
        step: "inheritance",
        message: `${names} derives from ${wanted === "task" ? "JobBase" : "TaskBase"}: this is a ${otherKind}, add it as a ${otherKind} (POST /api/v1/${otherKind}s), not as a ${wanted}`,
      };
    }
    return {
      ok: false,
      step: "inheritance",
      message: `no exported class derives from ${base} (import { ${base} } from "iocmng" and export your class)`,
    };
  }
  if (mine.length > 1) {
    return {
      ok: false,
      step: "inheritance",
      message: `exactly one exported class deriving from ${base} expected, found ${mine.length}: ${mine.map((c) => found.get(c)).join(", ")}`,
    };
  }
  const cls = mine[0] as new () => sdk.TaskBase | sdk.JobBase;
  const required =
    wanted === "task" ? ["initialize", "execute", "cleanup"] : ["initialize", "execute"];
  const proto = cls.prototype as unknown as Record<string, unknown>;
  const missing = required.filter((m) => typeof proto[m] !== "function");
  if (missing.length > 0) {
    return {
      ok: false,
      step: "abstract",
      message: `${found.get(cls)} does not implement ${missing.map((m) => `${m}()`).join(", ")}`,
    };
  }
  pluginClass = cls;
  return {
    ok: true,
    message: `class ${found.get(cls)} derives from ${base}`,
    data: { className: found.get(cls), kind: wanted },
  };
}

async function handleStart(m: Extract<ToWorker, { t: "start" }>): Promise<Reply> {
  if (!pluginClass) return { ok: false, step: "start", message: "no plugin class loaded" };
  // `ps -o comm`/`top` name the plugin, also when this process started as the spare.
  setThreadName(m.name);
  kind = m.kind;
  mode = m.mode;
  intervalMs = Math.max(0, m.interval * 1000);
  enabled = m.enabled;
  for (const [k, v] of Object.entries(m.pvs)) pvs.set(k, v);
  // A restart keeps PV values: the count goes on from there.
  const kept = Number(m.pvs.CYCLE_COUNT?.value);
  cycleCount = Number.isInteger(kept) && kept > 0 ? kept : 0;
  await installServices(m.services);
  try {
    instance = constructWithContext(pluginClass, {
      name: m.name,
      kind: m.kind,
      prefix: m.prefix,
      parameters: m.parameters,
      mode: m.mode,
      interval: m.interval,
      host,
      ...(m.declarative ? { declarative: m.declarative } : {}),
    });
    if (instance instanceof sdk.TaskBase) instance._cycleCount = cycleCount;
    if (m.declarative && !(instance instanceof sdk.DeclarativeTask)) {
      // Links, rules and transforms would silently do nothing in a plain TaskBase.
      return {
        ok: false,
        step: "start",
        message:
          'config.yaml declares links, rules or transforms: the plugin class must extend DeclarativeTask (import { DeclarativeTask } from "iocmng")',
      };
    }
  } catch (e) {
    log("error", `constructor failed: ${errorMessage(e)}`, e);
    return { ok: false, step: "start", message: `constructor failed: ${errorMessage(e)}` };
  }
  try {
    await withTimeout(
      Promise.resolve().then(() => instance?.initialize()),
      m.initTimeoutMs,
      "initialize()",
    );
  } catch (e) {
    log("error", `initialize() failed: ${errorMessage(e)}`, e);
    return { ok: false, step: "start", message: `initialize() failed: ${errorMessage(e)}` };
  }
  if (kind === "task") {
    setStatus(enabled ? "RUN" : "PAUSED");
    // After the start reply is out: a first execute() that blocks must not hold up the add.
    if (mode === "continuous") setTimeout(() => void continuousLoop(), 0);
  } else {
    setStatus("IDLE");
  }
  started = true;
  return { ok: true, message: "started" };
}

async function handleWrite(pv: string, value: unknown, timeoutMs: number): Promise<Reply> {
  const info = pvs.get(pv);
  if (kind === "task" && pv === "ENABLE") {
    enabled = Number(value) !== 0;
    if (info) info.value = enabled ? 1 : 0;
    if (!stopping && started) {
      if (!runtimeError || !enabled) setStatus(enabled ? "RUN" : "PAUSED");
      if (enabled) wakeLoop();
      try {
        (instance as sdk.TaskBase | null)?.onEnable?.(enabled);
      } catch (e) {
        log("error", `onEnable() failed: ${errorMessage(e)}`, e);
      }
    }
    return { ok: true, message: enabled ? "enabled" : "paused" };
  }
  const handler = instance?.onPvWrite;
  if (handler && instance) {
    const self = instance;
    try {
      // A handler that never settles must not hold the channel's write queue forever; if it
      // settles after the limit, the refused value is not taken either.
      await chainWrite(pv, timeoutMs, () => handler.call(self, pv, value));
    } catch (e) {
      return { ok: false, message: errorMessage(e) || "write refused by the plugin" };
    }
  }
  if (info && !hasPendingUpdate(pv)) info.value = value;
  return { ok: true, message: "written" };
}

async function handleTrigger(): Promise<Reply> {
  if (kind !== "task" || !instance) return { ok: false, message: "not a task" };
  if (mode !== "triggered") {
    return {
      ok: false,
      message: "RUN triggers execute() only in triggered mode; this task is continuous",
    };
  }
  if (stopping) return { ok: false, message: "task is stopping" };
  if (!started) return { ok: false, message: "task did not start (see MESSAGE)" };
  if (!enabled) return { ok: false, message: "task is disabled (ENABLE=0)" };
  if (busy) return { ok: false, message: "busy: the previous execute() is still running" };
  try {
    await runCycle();
    return { ok: true, message: "executed" };
  } catch (e) {
    return { ok: false, message: `execute() failed: ${errorMessage(e)}` };
  }
}

async function handleRunJob(overlay?: Record<string, unknown>): Promise<Reply> {
  const job = instance as sdk.JobBase | null;
  if (kind !== "job" || !job) return { ok: false, message: "not a job" };
  if (!started) return { ok: false, message: "job did not start (see MESSAGE)" };
  if (busy) return { ok: false, message: "job is already running" };
  let release: () => void = () => {};
  busy = new Promise<void>((r) => {
    release = r;
  });
  setStatus("RUNNING");
  setMessage("");
  // `parameters` is readonly for plugin code; the runtime swaps it for one run (runs never overlap).
  const params = job as unknown as { parameters: Record<string, unknown> };
  const own = params.parameters;
  if (overlay) params.parameters = { ...own, ...overlay };
  let result: sdk.JobResult;
  try {
    result = sdk.toJobResult(await job.execute());
  } catch (e) {
    exitIfOutOfMemory(e);
    log("error", `execute() failed: ${errorMessage(e)}`, e);
    result = sdk.JobResult.fail(errorMessage(e));
  } finally {
    params.parameters = own;
    busy = null;
    release();
  }
  setStatus(result.success ? "SUCCESS" : "FAILED");
  setMessage(result.message);
  let data: unknown = result.data;
  try {
    data = structuredClone(data);
  } catch {
    try {
      data = JSON.parse(JSON.stringify(data) ?? "null");
    } catch {
      data = String(data);
    }
  }
  return {
    ok: true,
    message: result.message,
    data: { success: result.success, data, message: result.message, timestamp: result.timestamp },
  };
}

/** Set once the plugin touched `this.ca`, so stop knows a libca context may need closing. */
let caLoaded = false;

async function handleStop(cleanupTimeoutMs: number): Promise<Reply> {
  stopping = true;
  wakeLoop();
  const deadline = performance.now() + cleanupTimeoutMs;
  try {
    if (busy) await withTimeout(busy, Math.max(1, deadline - performance.now()), "execute()");
    if (instance && started) {
      await withTimeout(
        Promise.resolve().then(() => instance?.cleanup()),
        Math.max(1, deadline - performance.now()),
        "cleanup()",
      );
    }
  } catch (e) {
    log("warn", `stop: ${errorMessage(e)}`, e);
  }
  // Close libca before the Worker is terminated: a context left open leaks its threads and a TCP
  // circuit per plugin stop/restart (the ffi client's docs measure it).
  if (caLoaded) {
    try {
      await (require("../../ffi/index.ts") as typeof import("../../ffi/index.ts")).closeCaClient();
    } catch (e) {
      log("warn", `stop: closing the CA client: ${errorMessage(e)}`, e);
    }
  }
  if (kind === "task") setStatus("END");
  return { ok: true, message: "stopped" };
}

async function installServices(s: Extract<ToWorker, { t: "start" }>["services"]): Promise<void> {
  // Loaded on first use with require(): a plugin that never touches CA pays nothing, and static
  // specifiers keep both modules inside a `bun build --compile` binary.
  const ca = (): PluginCaClient => {
    caLoaded = true;
    return (require("../../ffi/index.ts") as typeof import("../../ffi/index.ts")).caClient();
  };
  let devices: DeviceAccess | undefined;
  const values = s.beamlineValues;
  setServices({
    ca,
    ...(s.devices && values
      ? {
          devices: (): DeviceAccess => {
            if (!devices) {
              const mod = require("../devices/index.ts") as typeof import("../devices/index.ts");
              const ffi = require("../../ffi/index.ts") as typeof import("../../ffi/index.ts");
              const reg = mod.DeviceRegistry.fromValues(values, () => ffi.caClient());
              devices = {
                getDevice: (name) => reg.getDevice(name),
                listDevices: () => reg.listDevices(),
                getDevicesByType: (group) => reg.getDevicesByType(group),
              };
            }
            return devices;
          },
        }
      : {}),
  });
}

async function onMessage(m: ToWorker): Promise<void> {
  if (m.t === "reply") {
    const r = requests.get(m.id);
    requests.delete(m.id);
    if (r) {
      if (m.ok) r.resolve(m.data);
      else r.reject(new Error(m.message));
    }
    return;
  }
  let reply: Reply;
  try {
    switch (m.t) {
      case "load":
        reply = await handleLoad(m.files, m.kind);
        break;
      case "start":
        reply = await handleStart(m);
        break;
      case "write":
        reply = await handleWrite(m.pv, m.value, m.timeoutMs);
        break;
      case "trigger":
        reply = await handleTrigger();
        break;
      case "runJob":
        reply = await handleRunJob(m.parameters);
        break;
      case "stop":
        reply = await handleStop(m.cleanupTimeoutMs);
        break;
    }
  } catch (e) {
    reply = { ok: false, message: errorMessage(e) };
  }
  // PV updates made while handling go out before the reply, so the main thread sees them first
  // (a write handler that set its own value keeps it; a RUN completes after its outputs).
  flush();
  send({ t: "reply", id: m.id, ...reply });
}

process.on("message", (m: ToWorker) => void onMessage(m));
// The server closed the channel (it stopped or died): nobody is left to serve.
process.on("disconnect", () => process.reallyExit(0));

setInterval(() => {
  send({ t: "hb" });
  reportDroppedLogs();
}, 250);
send({ t: "ready" });
