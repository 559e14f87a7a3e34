/**
 * TCP reassembly: turns arbitrary chunks from a socket into whole CA messages. Sans-I/O: the
 * caller pushes what it read and pulls messages until `next()` returns null.
 */
import { EXTENDED_HEADER_SIZE, HEADER_SIZE } from "./constants.ts";
import { type CaHeader, get32 } from "./header.ts";

/** One item pulled from a MessageReader: a whole message, or a framing error. */
export type ReaderItem =
  | { kind: "message"; header: CaHeader; extended: boolean; payload: Uint8Array }
  | {
      kind: "error";
      error: "misaligned" | "oversized";
      header: CaHeader;
      extended: boolean;
    };

/** What `MessageReader.read()` found. */
export const READ = { NONE: 0, MESSAGE: 1, MISALIGNED: 2, OVERSIZED: 3 } as const;
/** A value of READ. */
export type ReadResult = (typeof READ)[keyof typeof READ];

/** Options of a MessageReader. */
export interface MessageReaderOptions {
  /** Largest payload accepted; bigger ones are reported "oversized" and skipped unbuffered. */
  maxPayload: number;
  /** Whether the peer may use extended headers (asked per header: VERSION arrives in-stream). */
  extendedAllowed: () => boolean;
}

const EMPTY = new Uint8Array(0);

// An owned buffer larger than this is released once drained, so one big message does not pin it.
const RETAIN_LIMIT = 1 << 20;

/**
 * Reassembles CA messages from a byte stream. Zero-copy when a message lies whole in one pushed
 * chunk; otherwise bytes are gathered in one growable buffer. `payload` views stay valid only
 * until the next `push`. Never throws on garbage: framing problems come out as error items.
 */
export class MessageReader {
  private readonly maxPayload: number;
  private readonly extendedAllowed: () => boolean;
  private buf: Uint8Array = EMPTY;
  private start = 0;
  private end = 0;
  // Our own gathering buffer (buf is either this or a borrowed chunk).
  private owned: Uint8Array | null = null;
  private skipRemaining = 0;
  private dead = false;
  /** Header of the message (or framing error) last returned by `read()`; reused, mutable. */
  readonly header: CaHeader = { command: 0, payloadSize: 0, dataType: 0, count: 0, p1: 0, p2: 0 };
  /** Whether that header was an extended (24-byte) one. */
  extended = false;
  /** The buffer holding that message's payload, at `payloadOffset` (header.payloadSize bytes). */
  bytes: Uint8Array = EMPTY;
  /** Offset of the payload in `bytes`. */
  payloadOffset = 0;

  constructor(opts: MessageReaderOptions) {
    this.maxPayload = opts.maxPayload;
    this.extendedAllowed = opts.extendedAllowed;
  }

  /** Bytes currently held (received but not yet returned as messages). */
  get buffered(): number {
    return this.end - this.start;
  }

  /** True after a misaligned message: the stream cannot be resynchronised. */
  get failed(): boolean {
    return this.dead;
  }

  /** Adds bytes read from the socket. Invalidates payload views returned earlier. */
  push(chunk: Uint8Array): void {
    if (this.dead || chunk.length === 0) return;
    let offset = 0;
    // Skip the rest of an oversized payload straight from the chunk, without buffering it.
    if (this.skipRemaining > 0 && this.start === this.end) {
      const n = Math.min(this.skipRemaining, chunk.length);
      this.skipRemaining -= n;
      offset = n;
      if (offset === chunk.length) return;
    }
    const held = this.end - this.start;
    if (held === 0) {
      this.releaseIfLarge();
      this.setBuf(offset === 0 ? chunk : chunk.subarray(offset));
      this.start = 0;
      this.end = this.buf.length;
      return;
    }
    const incoming = chunk.length - offset;
    const needed = held + incoming;
    let target = this.owned;
    if (target === null || target.length < needed) {
      target = new Uint8Array(Math.max(needed, (target?.length ?? 0) * 2, 4096));
    }
    // copyWithin handles the overlap when the held bytes already live in `target`.
    if (this.buf === target) target.copyWithin(0, this.start, this.end);
    else target.set(this.buf.subarray(this.start, this.end), 0);
    target.set(offset === 0 ? chunk : chunk.subarray(offset), held);
    this.owned = target;
    this.setBuf(target);
    this.start = 0;
    this.end = needed;
  }

  /**
   * Copies the unread bytes into the reader's own buffer, for a caller that stops reading before
   * the pushed chunk is consumed (the chunk's memory may be reused once its handler returns).
   */
  retain(): void {
    const held = this.end - this.start;
    if (held === 0 || this.buf === this.owned) return;
    let target = this.owned;
    if (target === null || target.length < held) target = new Uint8Array(Math.max(held, 4096));
    target.set(this.buf.subarray(this.start, this.end), 0);
    this.owned = target;
    this.setBuf(target);
    this.start = 0;
    this.end = held;
  }

  /** The next whole message or framing error, or null when more bytes are needed. */
  next(): ReaderItem | null {
    const r = this.read();
    if (r === READ.NONE) return null;
    const header = { ...this.header };
    if (r === READ.MESSAGE) {
      const p = this.payloadOffset;
      const payload = this.bytes.subarray(p, p + header.payloadSize);
      return { kind: "message", header, extended: this.extended, payload };
    }
    const error = r === READ.MISALIGNED ? "misaligned" : "oversized";
    return { kind: "error", error, header, extended: this.extended };
  }

  /**
   * Allocation-free form of `next()` for hot paths: parses the next message into the reader's
   * reused `header`, `extended`, `bytes` and `payloadOffset` fields (valid until the next call
   * or `push`) and returns what it found (READ.NONE when more bytes are needed).
   */
  read(): ReadResult {
    if (this.dead) return READ.NONE;
    if (this.skipRemaining > 0) {
      const n = Math.min(this.skipRemaining, this.end - this.start);
      this.start += n;
      this.skipRemaining -= n;
      if (this.skipRemaining > 0) return READ.NONE;
    }
    const b = this.buf;
    const o = this.start;
    const avail = this.end - o;
    if (avail < HEADER_SIZE) return READ.NONE;
    const size16 = (b[o + 2]! << 8) | b[o + 3]!;
    const extended = size16 === 0xffff && this.extendedAllowed();
    if (extended && avail < EXTENDED_HEADER_SIZE) return READ.NONE;
    const h = this.header;
    h.command = (b[o]! << 8) | b[o + 1]!;
    h.dataType = (b[o + 4]! << 8) | b[o + 5]!;
    h.p1 = get32(b, o + 8);
    h.p2 = get32(b, o + 12);
    if (extended) {
      h.payloadSize = get32(b, o + 16);
      h.count = get32(b, o + 20);
    } else {
      h.payloadSize = size16;
      h.count = (b[o + 6]! << 8) | b[o + 7]!;
    }
    this.extended = extended;
    const headerSize = extended ? EXTENDED_HEADER_SIZE : HEADER_SIZE;
    if ((h.payloadSize & 7) !== 0) {
      this.dead = true;
      return READ.MISALIGNED;
    }
    if (h.payloadSize > this.maxPayload) {
      this.start += headerSize;
      this.skipRemaining = h.payloadSize;
      const n = Math.min(this.skipRemaining, this.end - this.start);
      this.start += n;
      this.skipRemaining -= n;
      return READ.OVERSIZED;
    }
    if (avail < headerSize + h.payloadSize) return READ.NONE;
    this.bytes = b;
    this.payloadOffset = o + headerSize;
    this.start = o + headerSize + h.payloadSize;
    return READ.MESSAGE;
  }

  private setBuf(b: Uint8Array): void {
    this.buf = b;
  }

  private releaseIfLarge(): void {
    if (this.owned !== null && this.owned.length > RETAIN_LIMIT) this.owned = null;
  }
}
