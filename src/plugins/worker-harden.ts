/**
 * Hardening of a plugin's Worker, imported for its effects before any plugin code: console output
 * joins the structured log, process.exit/abort/kill of the server are refused, stray errors are
 * logged, and `import "iocmng"` resolves to the runtime's own SDK instance.
 */
import { format } from "node:util";
import { errorMessage } from "../common/errors.ts";
import type { LogLevel } from "../sdk/host.ts";
import * as sdk from "../sdk/index.ts";
import { exitIfOutOfMemory, log } from "./worker-log.ts";

// console.* in plugin code joins the server's structured log (tagged with the plugin, rate-limited
// like the logger) instead of writing raw lines into the server's stdout, which stays one JSON
// object per line for log collectors.
const CONSOLE_LEVELS: Array<[string, LogLevel]> = [
  ["log", "info"],
  ["info", "info"],
  ["debug", "debug"],
  ["trace", "trace"],
  ["warn", "warn"],
  ["error", "error"],
];
for (const [method, level] of CONSOLE_LEVELS) {
  (console as unknown as Record<string, unknown>)[method] = (...args: unknown[]): void => {
    const first = args[0];
    if (first instanceof Error) {
      const rest = args.slice(1);
      log(level, rest.length > 0 ? format(...rest) : errorMessage(first), first, { console: true });
    } else {
      log(level, format(...args), undefined, { console: true });
    }
  };
}

// process.exit() in a Worker would only end this Worker in Bun, but then the plugin vanishes with
// no trace: refuse it loudly instead, so the author sees why and the task keeps its PVs.
class ExitRefused extends Error {
  constructor(what: string) {
    super(`${what} is not allowed in a plugin (ignored)`);
    this.name = "ExitRefused";
  }
}
process.exit = ((code?: number) => {
  log("error", `plugin called process.exit(${code ?? ""}): refused`);
  throw new ExitRefused("process.exit()");
}) as typeof process.exit;
process.abort = (() => {
  log("error", "plugin called process.abort(): refused");
  throw new ExitRefused("process.abort()");
}) as typeof process.abort;
const realKill = process.kill.bind(process);
process.kill = ((pid: number, signal?: string | number) => {
  // (The server is our parent; under root its uid differs anyway: this gives an honest message.)
  if (pid === process.pid || pid === 0 || pid === -process.pid || pid === process.ppid) {
    log("error", `plugin tried to signal the server (process.kill(${pid})): refused`);
    throw new ExitRefused("signalling the server process");
  }
  return realKill(pid, signal);
}) as typeof process.kill;
process.on("unhandledRejection", (reason) => {
  log("error", `unhandled promise rejection in plugin: ${errorMessage(reason)}`, reason);
});
process.on("uncaughtException", (err) => {
  exitIfOutOfMemory(err);
  log("error", `uncaught exception in plugin: ${errorMessage(err)}`, err);
});

Bun.plugin({
  name: "iocmng-sdk",
  setup(build) {
    // Plugins import the very SDK instance the runtime checks against (class identity).
    build.module("iocmng", () => ({
      exports: sdk as unknown as Record<string, unknown>,
      loader: "object",
    }));
  },
});
