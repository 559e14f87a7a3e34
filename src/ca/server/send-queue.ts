/**
 * The send side of one circuit: one growable buffer that replies and monitor updates are appended
 * to, handed to the kernel with one `socket.write` per tick, a backlog of what the kernel refused
 * (written on `drain`), and the set of coalesced subscriptions.
 *
 * Bun sockets are unbuffered: what `write` does not take is ours to keep. While a backlog exists
 * (or the client sent EVENTS_OFF) monitor updates are not queued: the subscription is only marked
 * pending and its *latest* value is encoded when the circuit drains (rsrv's coalescing, see
 * docs/ca-protocol-facts.md "Flow control"), so a slow client costs one flag per subscription,
 * never unbounded memory, and never delays other circuits. Replies to requests still queue,
 * bounded: reading stops while the backlog is large and a circuit whose backlog passes
 * maxQueuedBytes is dropped.
 *
 * Protocol knowledge stays in the circuit; this file knows bytes, headers and sockets only.
 */
import type { Socket } from "bun";
import { writeHeader, writeStandardHeader } from "../codec/header.ts";

/** What the send queue needs of its socket (a Bun TCP socket). */
export type SendSocket = Pick<Socket<unknown>, "write">;

/** An item that may wait in the coalescing set: a subscription with its `pending` flag. */
export interface Coalescable {
  pending: boolean;
}

const OUT_INITIAL = 64 * 1024;
const OUT_RETAIN = 1024 * 1024;
// Above this many unsent bytes the circuit stops reading requests until the client catches up.
const PAUSE_READ_BYTES = 4 * 1024 * 1024;
// Budget of pending monitor updates written per drain before handing the data to the kernel.
const PENDING_BATCH_BYTES = 256 * 1024;
/**
 * A tick's send buffer is handed to the kernel early past this size, so a burst of big replies or
 * updates (e.g. many subscriptions to a large array) turns into backlog/coalescing, not a huge buffer.
 */
export const FLUSH_NOW_BYTES = 1024 * 1024;

export class SendQueue<S extends Coalescable> {
  /** The send buffer; bytes [0, len) are queued. Writers reserve() first, then write in place. */
  out = new Uint8Array(OUT_INITIAL);
  /** A DataView over `out` (replaced with it). */
  view = new DataView(this.out.buffer);
  len = 0;
  /** Subscriptions whose latest value is owed to the client (coalesced). */
  readonly pending = new Set<S>();
  private readonly backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private readPaused = false;
  private closed = false;

  constructor(
    private readonly socket: SendSocket,
    private readonly maxQueuedBytes: number,
    /** Told of every byte the kernel took (the server's bytesSent counter). */
    private readonly sent: (n: number) => void,
    /** The backlog passed maxQueuedBytes: the owner drops the circuit. */
    private readonly overflow: (reason: string) => void,
    /** Reading requests should stop (true: the backlog is large) or may go on (false). */
    private readonly pressure: (high: boolean) => void,
  ) {}

  /** Unsent bytes held (backlog + this tick's buffer). */
  get queuedBytes(): number {
    return this.backlogBytes + this.len;
  }

  /** Whether the kernel refused bytes that still wait for `drain`. */
  get congested(): boolean {
    return this.backlog.length > 0;
  }

  /** Makes room for `n` more bytes at `len`. */
  reserve(n: number): void {
    const need = this.len + n;
    if (need <= this.out.length) return;
    const next = new Uint8Array(Math.max(need, this.out.length * 2));
    next.set(this.out.subarray(0, this.len));
    this.out = next;
    this.view = new DataView(next.buffer);
  }

  /** Appends an encoded message. */
  append(msg: Uint8Array): void {
    this.reserve(msg.length);
    this.out.set(msg, this.len);
    this.len += msg.length;
  }

  /** A header-only message written in place (no per-message allocation). */
  appendHeader(
    command: number,
    dataType: number,
    count: number,
    p1: number,
    p2: number,
    extendedAllowed: boolean,
  ): void {
    this.reserve(24);
    if (count > 0xffff) {
      const h = { command, payloadSize: 0, dataType, count, p1, p2 };
      this.len += writeHeader(this.view, this.len, h, extendedAllowed);
      return;
    }
    // The common case (connect storm: ACCESS_RIGHTS + CREATE_CHAN per channel): a standard
    // header written field by field, no header object.
    writeStandardHeader(this.view, this.len, command, 0, dataType, count, p1, p2);
    this.len += 16;
  }

  /**
   * Header + already padded payload. Throws RangeError, writing nothing, when the sizes need the
   * extended header and the peer cannot take it (`extendedAllowed` false: a client < 4.9).
   */
  appendWithPayload(
    command: number,
    dataType: number,
    count: number,
    p1: number,
    p2: number,
    payload: Uint8Array,
    extendedAllowed: boolean,
  ): void {
    this.reserve(24 + payload.length);
    const h = { command, payloadSize: payload.length, dataType, count, p1, p2 };
    const hs = writeHeader(this.view, this.len, h, extendedAllowed);
    this.out.set(payload, this.len + hs);
    this.len += hs + payload.length;
  }

  /** Hands this tick's bytes to the kernel; what it refuses goes to the backlog. */
  flush(): void {
    if (this.closed || this.len === 0) return;
    const len = this.len;
    this.len = 0;
    if (this.backlog.length > 0) {
      this.pushBacklog(this.out.slice(0, len));
    } else {
      const n = this.socket.write(this.out, 0, len);
      if (n < 0) return; // closing: the close handler cleans up
      this.sent(n);
      if (n < len) this.pushBacklog(this.out.slice(n, len));
    }
    if (this.out.length > OUT_RETAIN) {
      this.out = new Uint8Array(OUT_INITIAL);
      this.view = new DataView(this.out.buffer);
    }
  }

  /**
   * The socket can take more: writes the backlog. Returns true when it is all gone (the pressure
   * is off then), false when the kernel is full again.
   */
  drain(): boolean {
    while (this.backlog.length > 0) {
      const b = this.backlog[0] as Uint8Array;
      const n = this.socket.write(b);
      if (n < 0) return false;
      this.sent(n);
      this.backlogBytes -= n;
      if (n < b.length) {
        this.backlog[0] = b.subarray(n);
        return false;
      }
      this.backlog.shift();
    }
    if (this.readPaused) {
      this.readPaused = false;
      this.pressure(false);
    }
    return true;
  }

  /** Marks a subscription as owed its latest value (written by writePending). */
  markPending(s: S): void {
    s.pending = true;
    this.pending.add(s);
  }

  /** Forgets a pending mark (the subscription went away). */
  unmark(s: S): void {
    if (!s.pending) return;
    s.pending = false;
    this.pending.delete(s);
  }

  /** Writes the latest value of every pending subscription, in batches, while the socket takes it. */
  writePending(write: (s: S) => void): void {
    while (this.pending.size > 0 && this.backlog.length === 0 && !this.closed) {
      for (const s of this.pending) {
        this.pending.delete(s);
        s.pending = false;
        write(s);
        if (this.len >= PENDING_BATCH_BYTES) break;
      }
      this.flush();
    }
  }

  /** The circuit closed: release everything. */
  close(): void {
    this.closed = true;
    this.pending.clear();
    this.backlog.length = 0;
    this.backlogBytes = 0;
    this.len = 0;
  }

  private pushBacklog(b: Uint8Array): void {
    this.backlog.push(b);
    this.backlogBytes += b.length;
    if (this.backlogBytes > this.maxQueuedBytes) {
      this.backlog.length = 0;
      this.backlogBytes = 0;
      this.overflow(`client not reading: more than ${this.maxQueuedBytes} bytes unsent`);
      return;
    }
    if (!this.readPaused && this.backlogBytes > PAUSE_READ_BYTES) {
      this.readPaused = true;
      this.pressure(true);
    }
  }
}
