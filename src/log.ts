import pino, { type Logger } from "pino";

/** Root logger: JSON lines by default, pretty when stdout is a TTY (set IOCMNG_LOG_PRETTY=0/1 to force). */
export function createRootLogger(level = process.env.IOCMNG_LOG_LEVEL ?? "info"): Logger {
  const forced = process.env.IOCMNG_LOG_PRETTY;
  const pretty = forced === undefined ? process.stdout.isTTY === true : forced === "1";
  if (pretty) {
    return pino({
      level,
      transport: {
        target: "pino-pretty",
        options: { colorize: true, translateTime: "SYS:HH:MM:ss.l" },
      },
    });
  }
  return pino({ level, base: { app: "iocmng" } });
}

export type { Logger };
