/**
 * Client writes of one PV (Pv.startWrite / beginWrite / write): the checks every write passes on
 * every protocol alike, and the queue that completes overlapping writes in the order they began.
 *
 * Writes may overlap: each one's handler is called at once (a plugin's process then receives them
 * back to back and answers them in order), but they complete in the order they began, and a write
 * posts its value only if nothing was posted between the previous write's completion and its own
 * (the handler's own post, e.g. a clamped value, wins). A client may send writes by the hundred
 * thousand (acctst), so the queue is a linked list of pooled records with their callbacks bound
 * once: per write it costs the handler's promise and one `then`, nothing else.
 */
import { MAX_STRING_BYTES } from "./spec.ts";
import {
  type PvKind,
  type PvMeta,
  type PvValue,
  PvWriteError,
  type WriteHandler,
} from "./types.ts";

const encoder = new TextEncoder();

/** Told once when a client write completes: null when it succeeded, else why it failed. */
export interface WriteWaiter {
  writeCompleted(error: PvWriteError | null): void;
}

/** What the queue needs of its PV. */
export interface WriteTarget {
  readonly generation: number;
  readonly removed: boolean;
  readonly writeHandler: WriteHandler | undefined;
  /** Posts a written value (already normalized) as a forced update. */
  postWritten(value: PvValue): void;
}

/** A handler's exception as the write's refusal. */
export function refused(e: unknown): PvWriteError {
  const reason = e instanceof Error ? e.message : String(e);
  return new PvWriteError(reason || "write refused", "rejected");
}

class PendingWrite {
  queue: WriteQueue | null = null;
  value: PvValue = 0;
  waiter: WriteWaiter | null = null;
  answered = false;
  error: PvWriteError | null = null;
  /** The PV's generation when this write's turn began: a post after it means "keep that one". */
  start = 0;
  next: PendingWrite | null = null;
  // Bound once per record (records are reused): no closure per write.
  readonly ok = (): void => {
    this.answered = true;
    this.queue?.drain();
  };
  readonly fail = (e: unknown): void => {
    this.answered = true;
    this.error = refused(e);
    this.queue?.drain();
  };
}

// Records of completed writes, reused. Bounded: a burst larger than this allocates the rest.
const pool: PendingWrite[] = [];
const POOL_MAX = 4096;

function take(): PendingWrite {
  return pool.pop() ?? new PendingWrite();
}

function release(r: PendingWrite): void {
  r.queue = null;
  r.value = 0;
  r.waiter = null;
  r.answered = false;
  r.error = null;
  r.next = null;
  if (pool.length < POOL_MAX) pool.push(r);
}

/** The pending client writes of one PV, oldest first. */
export class WriteQueue {
  private head: PendingWrite | null = null;
  private tail: PendingWrite | null = null;

  constructor(private readonly pv: WriteTarget) {}

  /**
   * Runs the handler for `value` (checked and normalized) and completes the write in order:
   * false when it completed (or failed) before returning — `waiter` was told — true when it is
   * pending and `waiter` will be told later, after every write that began before it.
   */
  start(value: PvValue, ctx: Parameters<WriteHandler>[1], waiter: WriteWaiter): boolean {
    const pv = this.pv;
    const idle = this.head === null;
    const before = pv.generation;
    let answer: unknown = null;
    let thrown: PvWriteError | null = null;
    try {
      answer = pv.writeHandler?.(value, ctx);
    } catch (e) {
      thrown = refused(e);
    }
    const async = answer instanceof Promise;
    if (idle && !async) {
      // Nothing pending and nothing to wait for: done now (the path of a PV without a handler).
      if (thrown === null && pv.generation === before && !pv.removed) pv.postWritten(value);
      waiter.writeCompleted(thrown);
      return false;
    }
    const r = take();
    r.queue = this;
    r.value = value;
    r.waiter = waiter;
    r.start = before;
    if (this.tail === null) this.head = r;
    else this.tail.next = r;
    this.tail = r;
    if (async) (answer as Promise<void>).then(r.ok, r.fail);
    else {
      // A synchronous answer behind pending writes completes in its turn.
      r.answered = true;
      r.error = thrown;
    }
    return true;
  }

  /** Completes the answered writes at the head of the queue, in order. */
  drain(): void {
    const pv = this.pv;
    for (;;) {
      const r = this.head;
      if (r === null || !r.answered) return;
      this.head = r.next;
      if (this.head === null) this.tail = null;
      const error = r.error;
      if (error === null && pv.generation === r.start && !pv.removed) pv.postWritten(r.value);
      // The next write's turn begins now: what is posted from here on is "since the previous".
      if (this.head !== null) this.head.start = pv.generation;
      const waiter = r.waiter as WriteWaiter;
      release(r);
      waiter.writeCompleted(error);
    }
  }
}

/** What the checks need of the PV. */
export interface CheckTarget {
  readonly name: string;
  readonly kind: PvKind;
  readonly count: number;
  readonly meta: Readonly<PvMeta>;
}

/**
 * A client's value must fit the PV, on every path alike: a string of at most 39 bytes (40 with
 * the NUL, DBR_STRING's size), at most `count` elements. normalize() would cut the rest off
 * silently, which libca never lets a CA client do (it refuses a put longer than the channel).
 */
export function checkInputSize(pv: CheckTarget, input: unknown): void {
  if (typeof input === "number") return; // the common case, always fits
  const charArray = pv.kind === "char" && pv.count > 1;
  if (typeof input === "string" && (pv.kind === "string" || charArray)) {
    const bytes = encoder.encode(input).length;
    const max = charArray ? pv.count - 1 : MAX_STRING_BYTES;
    if (bytes > max) {
      throw new PvWriteError(`${pv.name}: string of ${bytes} bytes, at most ${max} fit`, "range");
    }
  } else if (isArrayLike(input) && input.length > pv.count) {
    throw new PvWriteError(
      `${pv.name}: ${input.length} elements, at most ${pv.count} fit`,
      "range",
    );
  }
}

/** Drive limits, enum range and finiteness of a normalized value. */
export function checkWritable(pv: CheckTarget, value: PvValue): void {
  const m = pv.meta;
  if (m.finiteOnly && typeof value !== "string") checkFinite(pv.name, value);
  if (pv.kind === "enum" && typeof value === "number") {
    const n = m.states?.length ?? 0;
    if (n > 0 && value >= n) {
      throw new PvWriteError(`${pv.name}: enum index ${value} out of range 0..${n - 1}`, "range");
    }
  }
  const lo = m.controlLow;
  const hi = m.controlHigh;
  // EPICS ignores DRVL/DRVH when both are equal (unset); we do the same.
  if (lo === undefined || hi === undefined || lo === hi) {
    if (lo !== undefined && hi === undefined)
      checkRange(pv.name, value, lo, Number.POSITIVE_INFINITY);
    if (hi !== undefined && lo === undefined)
      checkRange(pv.name, value, Number.NEGATIVE_INFINITY, hi);
    return;
  }
  checkRange(pv.name, value, lo, hi);
}

function isArrayLike(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || ArrayBuffer.isView(v);
}

function checkFinite(name: string, value: PvValue): void {
  const bad = (x: number) => {
    if (!Number.isFinite(x))
      throw new PvWriteError(`${name}: ${x} is not a finite number`, "range");
  };
  if (typeof value === "number") bad(value);
  else if (typeof value === "object") for (const x of value) bad(x);
}

function checkRange(name: string, value: PvValue, lo: number, hi: number): void {
  // A PV with drive limits takes finite numbers only: NaN compares false with both limits and
  // would otherwise pass, and ±Infinity would pass a one-sided limit.
  checkFinite(name, value);
  const check = (x: number) => {
    if (x < lo || x > hi) {
      throw new PvWriteError(`${name}: ${x} outside drive limits [${lo}, ${hi}]`, "range");
    }
  };
  if (typeof value === "number") check(value);
  else if (typeof value === "object") for (const x of value) check(x);
}
