import pino, { type Logger } from "pino";

/** Root logger: JSON lines by default, pretty when stdout is a TTY (set IOCMNG_LOG_PRETTY=0/1 to force). */
export function createRootLogger(level = process.env.IOCMNG_LOG_LEVEL ?? "info"): Logger {
  const forced = process.env.IOCMNG_LOG_PRETTY;
  const isPretty = forced === undefined ? process.stdout.isTTY === true : forced === "1";
  if (isPretty) {
    // pino-pretty as an in-process stream, not a pino transport: transports resolve their target
    // module by path in a worker thread, which fails inside the `bun build --compile` binary.
    // Required only here: a JSON-logging start (the service default) does not evaluate pino-pretty
    // and its dependencies (cold start, docs/benchmarks.md).
    const pretty = require("pino-pretty") as typeof import("pino-pretty");
    return pino({ level }, pretty({ colorize: true, translateTime: "SYS:HH:MM:ss.l", sync: true }));
  }
  return pino({ level, base: { app: "iocmng" } });
}

export type { Logger };
