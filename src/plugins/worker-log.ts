import type { LogLevel } from "../sdk/host.ts";
import type { FromWorker } from "./protocol.ts";

/** To the server over the plugin process's IPC channel. */
export function send(msg: FromWorker): void {
  // A closed channel (the server is gone) throws: nothing left to tell, the process ends.
  try {
    process.send?.(msg);
  } catch {}
}

/**
 * In a plugin process, running out of memory means the plugin hit its memory limit: the process
 * ends (exit code 70, the server names the limit) instead of limping on with a heap it cannot grow.
 */
export function exitIfOutOfMemory(e: unknown): void {
  if (!(e instanceof RangeError) || !/out of memory/i.test(e.message)) return;
  send({ t: "fatal", reason: "memory" });
  process.reallyExit(70);
}

function serializeError(e: unknown): { name: string; message: string; stack?: string } {
  if (e instanceof Error) {
    return { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
  }
  return { name: "Error", message: String(e) };
}

/** Log lines a plugin may send per second on average, and in one burst. */
const LOG_RATE = 200;
const LOG_BURST = 1000;
let logTokens = LOG_BURST;
let logDropped = 0;
let logRefill = performance.now();

/** Tells the main thread how many lines were dropped since the last report (if any). */
export function reportDroppedLogs(): void {
  if (logDropped === 0) return;
  const n = logDropped;
  logDropped = 0;
  send({
    t: "log",
    level: "warn",
    bindings: { dropped: n },
    msg: `${n} log line(s) dropped: more than ${LOG_RATE}/s`,
  });
}

/**
 * Forwards a log line to the main thread. A token bucket caps a chatty plugin (a log call in a hot
 * loop) so that it cannot flood the server's event loop; dropped lines are counted and reported.
 */
export function log(
  level: LogLevel,
  msg: string,
  err?: unknown,
  bindings: Record<string, unknown> = {},
) {
  const now = performance.now();
  logTokens = Math.min(LOG_BURST, logTokens + ((now - logRefill) / 1000) * LOG_RATE);
  logRefill = now;
  if (logTokens < 1) {
    logDropped++;
    return;
  }
  logTokens--;
  reportDroppedLogs();
  send({
    t: "log",
    level,
    bindings,
    msg,
    ...(err !== undefined ? { err: serializeError(err) } : {}),
  });
}
