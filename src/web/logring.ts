/**
 * The recent log lines of each plugin, kept in memory for the console and the REST endpoint
 * `GET /api/v1/plugins/{name}/logs`: a bounded ring per plugin (oldest dropped), a bounded number
 * of plugins (least recently written dropped), and listeners for live lines.
 *
 * Lines are taken from the server's own pino logger by {@link tapLogger}: every logger derived
 * with a `plugin` binding (the controller's per-plugin child, the worker host's forwarded plugin
 * logs) also records into the ring. Nothing in the plugin runtime has to know about it.
 */
import type { Logger } from "pino";

export type LogLevelName = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

export interface LogLine {
  /** Sequence number, increasing across all plugins (lets a client ask for lines after one). */
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
  level: LogLevelName;
  msg: string;
}

const LEVELS: readonly LogLevelName[] = ["trace", "debug", "info", "warn", "error", "fatal"];
/** Longest message kept (a plugin may log megabytes; the ring must stay small). */
export const MAX_LINE_CHARS = 2000;

interface Ring {
  lines: LogLine[];
  errors: number;
}

export class LogRings {
  private readonly rings = new Map<string, Ring>();
  private readonly listeners = new Set<(plugin: string, line: LogLine) => void>();
  private seq = 0;

  constructor(
    readonly capacity = 200,
    readonly maxPlugins = 1000,
  ) {}

  push(plugin: string, level: LogLevelName, msg: string, time = Date.now()): void {
    let ring = this.rings.get(plugin);
    if (ring === undefined) {
      if (this.rings.size >= this.maxPlugins) {
        const oldest = this.rings.keys().next().value;
        if (oldest !== undefined) this.rings.delete(oldest);
      }
      ring = { lines: [], errors: 0 };
    } else {
      this.rings.delete(plugin); // re-insert: Map order is then least recently written first
    }
    this.rings.set(plugin, ring);
    const text = msg.length > MAX_LINE_CHARS ? `${msg.slice(0, MAX_LINE_CHARS)}…` : msg;
    const line: LogLine = { seq: ++this.seq, time, level, msg: text };
    ring.lines.push(line);
    if (ring.lines.length > this.capacity) ring.lines.splice(0, ring.lines.length - this.capacity);
    if (level === "error" || level === "fatal") ring.errors++;
    for (const l of this.listeners) {
      try {
        l(plugin, line);
      } catch {
        // A failing listener (a closed socket) must not stop logging.
      }
    }
  }

  /** Lines of `plugin`, oldest first, optionally only those after sequence number `after`. */
  lines(plugin: string, after = 0): LogLine[] {
    const lines = this.rings.get(plugin)?.lines ?? [];
    return after > 0 ? lines.filter((l) => l.seq > after) : [...lines];
  }

  /** The last error or fatal line of `plugin`, if any is still in the ring. */
  lastError(plugin: string): LogLine | undefined {
    const lines = this.rings.get(plugin)?.lines ?? [];
    for (let i = lines.length - 1; i >= 0; i--) {
      const l = lines[i]!;
      if (l.level === "error" || l.level === "fatal") return l;
    }
    return undefined;
  }

  /** Error and fatal lines of `plugin` since the server started (also those out of the ring). */
  errorCount(plugin: string): number {
    return this.rings.get(plugin)?.errors ?? 0;
  }

  /** Plugins that have lines. */
  plugins(): string[] {
    return [...this.rings.keys()];
  }

  /** Calls `cb` for every new line; returns the unsubscribe function. */
  subscribe(cb: (plugin: string, line: LogLine) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}

/** The message of a pino call's arguments: `(msg)`, `(obj, msg)`, `(err)` or `(obj)` with `err`. */
export function messageOf(args: unknown[]): string {
  const [first, second] = args;
  if (typeof first === "string") return args.length > 1 ? args.map(String).join(" ") : first;
  if (first instanceof Error) return typeof second === "string" ? second : first.message;
  let msg = typeof second === "string" ? second : "";
  if (first !== null && typeof first === "object") {
    const err = (first as { err?: unknown }).err;
    const why =
      err instanceof Error
        ? err.message
        : typeof err === "string"
          ? err
          : err !== null && typeof err === "object" && "message" in err
            ? String((err as { message: unknown }).message)
            : "";
    if (why !== "" && !msg.includes(why)) msg = msg === "" ? why : `${msg}: ${why}`;
  }
  return msg;
}

/**
 * A logger that behaves as `logger` and also records, into `rings`, every line logged through a
 * child that has (or inherits) a `plugin` binding. Levels below info are not recorded.
 */
export function tapLogger(logger: Logger, rings: LogRings, plugin?: string): Logger {
  return new Proxy(logger, {
    get(target, prop, receiver) {
      if (prop === "child") {
        return (bindings: Record<string, unknown>, options?: object) => {
          const child =
            options === undefined ? target.child(bindings) : target.child(bindings, options);
          const p = typeof bindings?.plugin === "string" ? bindings.plugin : plugin;
          return tapLogger(child, rings, p);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      if (plugin === undefined || typeof prop !== "string" || typeof value !== "function") {
        return value;
      }
      const level = LEVELS.indexOf(prop as LogLevelName);
      if (level < 2) return value;
      return (...args: unknown[]) => {
        rings.push(plugin, prop as LogLevelName, messageOf(args));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
