/**
 * The client's per-name state: a libca channel, the operations waiting on it and its monitors,
 * plus the argument checks of the public calls.
 */
import type { Pointer } from "bun:ffi";
import type { CaForm, CaMonitor, MonitorOptions } from "./api.ts";
import type { CaReading } from "./dbr.ts";
import { CaError } from "./errors.ts";

const DEFAULT_TIMEOUT_S = 5;
const MAX_TIMEOUT_S = 24 * 3600;
const MAX_NAME_BYTES = 1007;
const NAME_RE = /^[\x21-\x7e]+$/;

export interface Op {
  id: number;
  kind: "get" | "put";
  ch: Channel;
  issued: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (r: CaReading | undefined) => void;
  reject: (e: Error) => void;
  issue: (op: Op) => void;
}

export class Channel {
  chid = 0 as Pointer;
  connected = false;
  everConnected = false;
  native = -1;
  elementCount = 0;
  canRead = false;
  canWrite = false;
  /** Operations waiting for the connection. */
  readonly waiting = new Set<Op>();
  readonly listeners = new Set<(connected: boolean) => void>();
  readonly monitors = new Set<Monitor>();
  constructor(readonly name: string) {}
}

export class Monitor implements CaMonitor {
  evid = 0 as Pointer;
  dropped = 0;
  closed = false;
  private readonly queue: CaReading[] = [];
  private readonly waiters: Array<(r: IteratorResult<CaReading>) => void> = [];
  constructor(
    readonly id: number,
    readonly ch: Channel,
    readonly form: CaForm,
    readonly mask: number,
    private readonly onUpdate: ((r: CaReading) => void) | undefined,
    private readonly queueLimit: number,
    private readonly closer: (m: Monitor) => void,
  ) {}

  get name(): string {
    return this.ch.name;
  }

  deliver(r: CaReading): void {
    if (this.closed) return;
    if (this.onUpdate) {
      try {
        this.onUpdate(r);
      } catch {
        // A throwing consumer must not break delivery to the other monitors of this drain.
      }
    }
    const w = this.waiters.shift();
    if (w) w({ value: r, done: false });
    else if (this.onUpdate === undefined || this.iterated) {
      this.queue.push(r);
      if (this.queue.length > this.queueLimit) {
        this.queue.shift();
        this.dropped++;
      }
    }
  }

  private iterated = false;

  end(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  close(): void {
    if (this.closed) return;
    this.closer(this);
    this.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<CaReading> {
    this.iterated = true;
    return {
      next: () => {
        const r = this.queue.shift();
        if (r) return Promise.resolve({ value: r, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export function checkName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new CaError(
      `invalid PV name ${JSON.stringify(name)}: printable ASCII without spaces expected`,
    );
  }
  if (name.length > MAX_NAME_BYTES) {
    throw new CaError(`PV name too long (${name.length} > ${MAX_NAME_BYTES} bytes)`);
  }
  return name;
}

export function checkTimeout(t: unknown): number {
  if (t === undefined) return DEFAULT_TIMEOUT_S;
  if (typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > MAX_TIMEOUT_S) {
    throw new CaError(`timeout must be a number of seconds in (0, ${MAX_TIMEOUT_S}], got ${t}`);
  }
  return t;
}

export function checkForm(f: unknown): CaForm {
  if (f === undefined) return "time";
  if (f === "value" || f === "time" || f === "ctrl") return f;
  throw new CaError(`"as" must be "value", "time" or "ctrl", got ${JSON.stringify(f)}`);
}

/** A get's element count: 0 (the server's native count) up to 2^31 - 1. */
export function checkCount(c: number | undefined): number {
  const count = c ?? 0;
  if (!Number.isInteger(count) || count < 0 || count > 0x7fffffff) {
    throw new CaError(`count must be a non-negative integer, got ${c}`);
  }
  return count;
}

/** A monitor's event mask (default value|alarm) and queue limit; its callback if given. */
export function checkMonitorOptions(opts: MonitorOptions): { mask: number; limit: number } {
  const mask = opts.mask ?? 5;
  if (!Number.isInteger(mask) || mask <= 0 || mask > 15) {
    throw new CaError(`mask must be a DBE_* combination 1..15, got ${opts.mask}`);
  }
  const limit = opts.queueLimit ?? 1000;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new CaError(`queueLimit must be a positive integer, got ${opts.queueLimit}`);
  }
  if (opts.onUpdate !== undefined && typeof opts.onUpdate !== "function") {
    throw new CaError("onUpdate must be a function");
  }
  return { mask, limit };
}
