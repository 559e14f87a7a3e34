import { defaultValue, MAX_STRING_BYTES, PvSpecError, validateMeta, validateSpec } from "./spec.ts";
import {
  AlarmStatus,
  DBE,
  type PostOptions,
  type PvKind,
  type PvListener,
  type PvMeta,
  type PvSpec,
  type PvState,
  type PvValue,
  PvWriteError,
  Severity,
  type Timestamp,
  type WriteContext,
  type WriteHandler,
} from "./types.ts";
import { checkInputSize, checkWritable, refused, WriteQueue, type WriteWaiter } from "./writes.ts";

// The limits live with the spec checks; re-exported here for the modules that import them from pv.ts.
export {
  MAX_ENUM_STATES,
  MAX_ENUM_STRING_BYTES,
  MAX_PV_COUNT,
  MAX_PV_NAME_BYTES,
  MAX_STRING_BYTES,
  MAX_UNITS_BYTES,
  PvSpecError,
} from "./spec.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NO_OPTIONS: PostOptions = Object.freeze({});
const FORCED: PostOptions = Object.freeze({ force: true });
const NO_ALARM = Object.freeze({ status: AlarmStatus.NO_ALARM, severity: Severity.NO_ALARM });
// The metadata of every PV made without any (most addPv PVs): one shared frozen object instead of
// one per PV (72 B each; docs/benchmarks.md, "Product-path memory").
const NO_META: Readonly<PvMeta> = Object.freeze({});

// Sub-millisecond wall clock: the monotonic clock plus an offset re-anchored to Date.now()
// whenever they drift more than 1 ms apart (NTP steps and slews), without BigInt on the hot path.
let clockOffset = performance.timeOrigin;

/** Current wall-clock time as an EPICS-style timestamp. */
export function now(): Timestamp {
  let ms = clockOffset + performance.now();
  const wall = Date.now();
  if (Math.abs(ms - wall) > 1) {
    clockOffset = wall - performance.now();
    ms = wall;
  }
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6)) };
}

// PVs created within the same millisecond (a plugin's addPv batch, a restore) share one creation
// timestamp object: timestamps are never mutated, and one {sec, nsec} per PV costs 32 B for
// nothing (docs/benchmarks.md, "Product-path memory").
let creationMs = -1;
let creationStamp: Timestamp = { sec: 0, nsec: 0 };
function creationTime(): Timestamp {
  const ms = Math.floor(performance.now());
  if (ms !== creationMs) {
    creationMs = ms;
    creationStamp = now();
  }
  return creationStamp;
}

/** Truncates a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  const bytes = encoder.encode(s);
  if (bytes.length <= max) return s;
  let end = max;
  // Step back over UTF-8 continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}

function isArrayLike(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

// The server-side reading of a number, as rsrv converts what a record is given: a blank string is
// 0 and an array gives its first element. ffi/client.ts has a stricter twin on purpose: a client
// refuses "" or an array for a scalar before anything reaches the wire, where a typo would
// otherwise put 0.
function toNumber(v: unknown, name: string): number {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string") {
    const t = v.trim();
    const n = t === "" ? 0 : Number(t);
    if (Number.isNaN(n) && t.toLowerCase() !== "nan") {
      throw new PvSpecError(`${name}: expected a number, got string "${truncateUtf8(v, 40)}"`);
    }
    return n;
  }
  if (isArrayLike(v)) return v.length > 0 ? toNumber(v[0], name) : 0;
  throw new PvSpecError(`${name}: expected a number, got ${v === null ? "null" : typeof v}`);
}

/** A process variable: value, alarm, timestamp and metadata, with update listeners. */
export class Pv {
  readonly name: string;
  readonly kind: PvKind;
  /** Maximum element count (1 for scalars). */
  readonly count: number;
  readonly writable: boolean;
  /** Access security group; undefined = DEFAULT. */
  readonly asg: string | undefined;
  /** Increments on every posted change of value/alarm/timestamp; lets encoders cache per update. */
  generation = 0;
  /** Increments on every metadata change. */
  metaGeneration = 0;
  /** True once removed from its registry: holders must drop it. */
  removed = false;
  writeHandler: WriteHandler | undefined;

  private _meta: Readonly<PvMeta>;
  private _state: PvState;
  // Created with the first listener: most PVs of a large IOC are never monitored, and two empty
  // Sets per PV cost ~80 B (docs/benchmarks.md, "Product-path memory").
  private listeners: Set<PvListener> | null = null;
  private removalListeners: Set<() => void> | null = null;
  // Last values that triggered DBE_VALUE / DBE_LOG, for the MDEL/ADEL deadbands.
  private lastMonitored: number;
  private lastArchived: number;
  // Last alarm limit crossed, for hysteresis (like the ai record's LALM).
  private lastAlarmLimit = Number.NaN;

  constructor(spec: PvSpec, handler?: WriteHandler) {
    validateSpec(spec);
    this.name = spec.name;
    this.kind = spec.kind;
    this.count = spec.count ?? 1;
    this.writable = spec.writable ?? false;
    this.asg = spec.asg;
    this.writeHandler = handler;
    const meta = spec.meta;
    this._meta = meta === undefined || isEmpty(meta) ? NO_META : Object.freeze({ ...meta });
    const value = this.normalize(spec.initial ?? defaultValue(this.kind, this.count));
    this._state = {
      value,
      status: AlarmStatus.NO_ALARM,
      severity: Severity.NO_ALARM,
      timestamp: creationTime(),
    };
    const alarm = this.computeAlarm(value);
    this._state.status = alarm.status;
    this._state.severity = alarm.severity;
    const scalar = typeof value === "number" ? value : 0;
    this.lastMonitored = scalar;
    this.lastArchived = scalar;
  }

  /** The current value (typed arrays are shared: treat as read-only). */
  get value(): PvValue {
    return this._state.value;
  }
  get status(): AlarmStatus {
    return this._state.status;
  }
  get severity(): Severity {
    return this._state.severity;
  }
  get timestamp(): Timestamp {
    return this._state.timestamp;
  }
  /** A consistent snapshot of value, alarm and timestamp. */
  get state(): Readonly<PvState> {
    return this._state;
  }
  get meta(): Readonly<PvMeta> {
    return this._meta;
  }
  /** Number of valid elements now (≤ count): the length of an array value, else 1. */
  get length(): number {
    const v = this._state.value;
    return typeof v === "object" ? v.length : 1;
  }

  /** Registers an update listener; returns the function that removes it. */
  subscribe(listener: PvListener): () => void {
    this.listeners ??= new Set();
    const set = this.listeners;
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Registers a callback run once when this PV is removed from its registry. */
  onRemove(cb: () => void): () => void {
    if (this.removed) {
      cb();
      return () => {};
    }
    this.removalListeners ??= new Set();
    const set = this.removalListeners;
    set.add(cb);
    return () => set.delete(cb);
  }

  /** Number of update listeners (for diagnostics and tests). */
  get listenerCount(): number {
    return this.listeners?.size ?? 0;
  }

  /**
   * Converts any accepted input to this PV's native representation, or throws PvSpecError.
   * Numbers, booleans, numeric strings, arrays and typed arrays are accepted; enum also takes a
   * state name; char arrays take a string (UTF-8 bytes plus NUL, the EPICS long-string idiom).
   */
  normalize(input: unknown): PvValue {
    const { kind, count, name } = this;
    if (kind === "string") {
      if (typeof input === "string") return truncateUtf8(input, MAX_STRING_BYTES);
      if (isArrayLike(input)) return this.normalize(input.length > 0 ? input[0] : "");
      if (typeof input === "number" || typeof input === "boolean" || typeof input === "bigint") {
        return truncateUtf8(String(input), MAX_STRING_BYTES);
      }
      throw new PvSpecError(
        `${name}: expected a string, got ${input === null ? "null" : typeof input}`,
      );
    }
    if (kind === "enum") {
      if (typeof input === "string") {
        const idx = this._meta?.states?.indexOf(input) ?? -1;
        if (idx >= 0) return idx;
      }
      const n = toNumber(input, name);
      if (!Number.isInteger(n) || n < 0 || n > 0xffff) {
        throw new PvSpecError(
          `${name}: expected an enum index 0..65535 or a state name, got ${String(input)}`,
        );
      }
      return n;
    }
    if (count === 1) {
      const n = toNumber(input, name);
      if (kind === "double") return n;
      if (kind === "long") return Number.isFinite(n) ? Math.trunc(n) | 0 : 0;
      return Number.isFinite(n) ? Math.trunc(n) & 0xff : 0; // char
    }
    return this.normalizeArray(input);
  }

  private normalizeArray(input: unknown): Float64Array | Int32Array | Uint8Array {
    const { kind, count, name } = this;
    if (kind === "char" && typeof input === "string") {
      const bytes = encoder.encode(input);
      const n = Math.min(bytes.length + 1, count);
      const out = new Uint8Array(n);
      out.set(bytes.subarray(0, n - 1));
      return out;
    }
    let src: ArrayLike<number>;
    if (isArrayLike(input)) src = input;
    else if (typeof input === "number" || typeof input === "boolean" || typeof input === "string") {
      src = [toNumber(input, name)];
    } else {
      throw new PvSpecError(
        `${name}: expected an array of numbers, got ${input === null ? "null" : typeof input}`,
      );
    }
    const n = Math.min(src.length, count);
    if (kind === "double") {
      if (src instanceof Float64Array && src.length <= count) return src;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = toNumber(src[i], name);
      return out;
    }
    if (kind === "long") {
      if (src instanceof Int32Array && src.length <= count) return src;
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = toNumber(src[i], name);
      return out;
    }
    if (src instanceof Uint8Array && src.length <= count) return src;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = toNumber(src[i], name);
    return out;
  }

  /**
   * Sets a new value (server side: plugins, restores). Computes the alarm from limits unless one is
   * given, applies the MDEL/ADEL deadbands and notifies listeners with the DBE bits triggered.
   * Typed arrays of the native type are kept by reference: do not mutate them after posting.
   */
  post(input: unknown, opts: PostOptions = NO_OPTIONS): void {
    if (this.removed) return;
    this.postValue(this.normalize(input), opts);
  }

  private postValue(value: PvValue, opts: PostOptions): void {
    if (this.removed) return;
    const prev = this._state;
    let status: AlarmStatus;
    let severity: Severity;
    if (opts.severity !== undefined || opts.status !== undefined) {
      severity = opts.severity ?? Severity.NO_ALARM;
      status =
        opts.status ?? (severity === Severity.NO_ALARM ? AlarmStatus.NO_ALARM : AlarmStatus.SOFT);
    } else {
      const a = this.computeAlarm(value);
      status = a.status;
      severity = a.severity;
    }
    let mask = 0;
    if (opts.force) mask |= DBE.VALUE | DBE.LOG;
    if (typeof value === "number") {
      if (exceeds(value, this.lastMonitored, this._meta.mdel ?? 0)) {
        mask |= DBE.VALUE;
        this.lastMonitored = value;
      }
      if (exceeds(value, this.lastArchived, this._meta.adel ?? 0)) {
        mask |= DBE.LOG;
        this.lastArchived = value;
      }
    } else if (typeof value === "string") {
      if (value !== prev.value) mask |= DBE.VALUE | DBE.LOG;
    } else {
      // Arrays post on every update, like the waveform record: comparing them costs more than sending.
      mask |= DBE.VALUE | DBE.LOG;
    }
    if (status !== prev.status || severity !== prev.severity) mask |= DBE.ALARM;
    this._state = { value, status, severity, timestamp: opts.timestamp ?? now() };
    this.generation++;
    if (mask !== 0) this.emit(mask);
  }

  /** Changes metadata (units, limits, states, …) and posts DBE_PROPERTY to monitors. */
  setMeta(patch: Partial<PvMeta>): void {
    if (this.removed) return;
    const next = { ...this._meta, ...patch };
    validateMeta(this.name, this.kind, next);
    this._meta = Object.freeze(next);
    this.metaGeneration++;
    this.generation++;
    this.emit(DBE.PROPERTY);
  }

  /**
   * A write from a protocol client: checks access, type, drive limits and enum range, then runs the
   * write handler (which may refuse by throwing) and finally posts the value. Rejects with
   * PvWriteError carrying an operator-readable reason.
   */
  async write(input: unknown, ctx: WriteContext = {}): Promise<void> {
    const pending = this.beginWrite(input, ctx);
    if (pending !== null) await pending;
  }

  /**
   * `write` for servers that care when it completes: null when the write completed before
   * returning (no handler, or a handler that answered synchronously: the value is posted), else a
   * promise of the handler's answer. A refusal throws PvWriteError (or rejects the promise).
   * Writes may overlap and complete in the order they began (writes.ts).
   */
  beginWrite(input: unknown, ctx: WriteContext = {}): Promise<void> | null {
    const w = new PromiseWaiter();
    if (!this.startWrite(input, ctx, w)) {
      if (w.result !== null) throw w.result;
      return null;
    }
    return w.promise();
  }

  /**
   * `beginWrite` without promises, for protocol servers taking writes by the hundred thousand:
   * false when the write completed or was refused before returning (`waiter` was told), true
   * when it is pending (`waiter` is told later, after every write to this PV that began before).
   */
  startWrite(input: unknown, ctx: WriteContext, waiter: WriteWaiter): boolean {
    let value: PvValue;
    try {
      value = this.checkWrite(input);
    } catch (e) {
      waiter.writeCompleted(e instanceof PvWriteError ? e : refused(e));
      return false;
    }
    this.writes ??= new WriteQueue(this);
    return this.writes.start(value, ctx, waiter);
  }

  // Pending client writes, created with the first write.
  private writes: WriteQueue | null = null;

  // The checks of every client write; the value normalized.
  private checkWrite(input: unknown): PvValue {
    if (this.removed) throw new PvWriteError(`${this.name}: PV was removed`, "rejected");
    if (!this.writable) throw new PvWriteError(`${this.name} is read-only`, "readonly");
    checkInputSize(this, input);
    let value: PvValue;
    try {
      value = this.normalize(input);
    } catch (e) {
      throw new PvWriteError((e as Error).message, "type");
    }
    checkWritable(this, value);
    return value;
  }

  /** @internal A client's written value (normalized already) posted by the write queue. */
  postWritten(value: PvValue): void {
    this.postValue(value, FORCED);
  }

  private computeAlarm(value: PvValue): { status: AlarmStatus; severity: Severity } {
    const m = this._meta;
    if (this.kind === "enum" && typeof value === "number" && m.stateSeverity) {
      const sev = m.stateSeverity[value] ?? Severity.NO_ALARM;
      if (sev !== Severity.NO_ALARM) return { status: AlarmStatus.STATE, severity: sev };
      return NO_ALARM;
    }
    const a = m.alarm;
    // The common case (no limits) shares one result: a post allocates no alarm object.
    if (!a || typeof value !== "number" || Number.isNaN(value)) return NO_ALARM;
    const hyst = a.hyst ?? 0;
    const last = this.lastAlarmLimit;
    const check = (
      limit: number | undefined,
      above: boolean,
      sev: Severity,
      status: AlarmStatus,
    ): { status: AlarmStatus; severity: Severity } | null => {
      if (limit === undefined || sev === Severity.NO_ALARM) return null;
      const hit = above
        ? value >= limit || (last === limit && value > limit - hyst)
        : value <= limit || (last === limit && value < limit + hyst);
      if (!hit) return null;
      this.lastAlarmLimit = limit;
      return { status, severity: sev };
    };
    const r =
      check(a.hihi, true, a.hhsv ?? Severity.MAJOR, AlarmStatus.HIHI) ??
      check(a.lolo, false, a.llsv ?? Severity.MAJOR, AlarmStatus.LOLO) ??
      check(a.high, true, a.hsv ?? Severity.MINOR, AlarmStatus.HIGH) ??
      check(a.low, false, a.lsv ?? Severity.MINOR, AlarmStatus.LOW);
    if (r) return r;
    this.lastAlarmLimit = Number.NaN;
    return NO_ALARM;
  }

  private emit(mask: number): void {
    const ls = this.listeners;
    if (ls === null) return;
    for (const l of ls) {
      try {
        l(mask);
      } catch {
        // A faulty listener must not stop delivery to the others; listeners log their own errors.
      }
    }
  }

  /** Marks the PV removed and tells its holders; called by the registry. */
  dispose(): void {
    if (this.removed) return;
    this.removed = true;
    this.listeners?.clear();
    const cbs = [...(this.removalListeners ?? [])];
    this.removalListeners?.clear();
    for (const cb of cbs) {
      try {
        cb();
      } catch {
        // Same reasoning as emit(): one holder's failure must not keep others attached.
      }
    }
  }
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

function exceeds(v: number, last: number, deadband: number): boolean {
  if (deadband < 0) return true;
  if (Number.isNaN(v) || Number.isNaN(last)) return !(Number.isNaN(v) && Number.isNaN(last));
  return Math.abs(v - last) > deadband;
}

// beginWrite's adapter from the waiter form to a promise (made only when the write is pending).
class PromiseWaiter implements WriteWaiter {
  result: PvWriteError | null = null;
  private done = false;
  private settle: ((error: PvWriteError | null) => void) | null = null;
  writeCompleted(error: PvWriteError | null): void {
    if (this.settle !== null) this.settle(error);
    else {
      this.done = true;
      this.result = error;
    }
  }
  promise(): Promise<void> {
    // Told already (cannot happen through startWrite's contract, but a promise must settle).
    if (this.done) return this.result === null ? Promise.resolve() : Promise.reject(this.result);
    return new Promise<void>((resolve, reject) => {
      this.settle = (error) => (error === null ? resolve() : reject(error));
    });
  }
}
