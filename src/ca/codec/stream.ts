/**
 * TCP reassembly: turns arbitrary chunks from a socket into whole CA messages. Sans-I/O: the
 * caller pushes what it read and pulls messages until `next()` returns null.
 */
import { type CaHeader, readHeaderBytes } from "./header.ts";

/** One item pulled from a MessageReader: a whole message, or a framing error. */
export type ReaderItem =
  | { kind: "message"; header: CaHeader; extended: boolean; payload: Uint8Array }
  | {
      kind: "error";
      error: "misaligned" | "oversized";
      header: CaHeader;
      extended: boolean;
    };

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

  /** The next whole message or framing error, or null when more bytes are needed. */
  next(): ReaderItem | null {
    if (this.dead) return null;
    if (this.skipRemaining > 0) {
      const n = Math.min(this.skipRemaining, this.end - this.start);
      this.start += n;
      this.skipRemaining -= n;
      if (this.skipRemaining > 0) return null;
    }
    const avail = this.end - this.start;
    const r = readHeaderBytes(this.buf, this.start, avail, this.extendedAllowed());
    if (r === null) return null;
    const { header, headerSize } = r;
    const extended = headerSize === 24;
    if ((header.payloadSize & 7) !== 0) {
      this.dead = true;
      return { kind: "error", error: "misaligned", header, extended };
    }
    if (header.payloadSize > this.maxPayload) {
      this.start += headerSize;
      this.skipRemaining = header.payloadSize;
      const n = Math.min(this.skipRemaining, this.end - this.start);
      this.start += n;
      this.skipRemaining -= n;
      return { kind: "error", error: "oversized", header, extended };
    }
    const total = headerSize + header.payloadSize;
    if (avail < total) return null;
    const p = this.start + headerSize;
    const payload = this.buf.subarray(p, p + header.payloadSize);
    this.start += total;
    return { kind: "message", header, extended, payload };
  }

  private setBuf(b: Uint8Array): void {
    this.buf = b;
  }

  private releaseIfLarge(): void {
    if (this.owned !== null && this.owned.length > RETAIN_LIMIT) this.owned = null;
  }
}
