/**
 * Changed-field BitSets (docs/pva.md §BitSet): Size n, then n/8 64-bit words in the message's byte
 * order, then the n%8 remaining bytes, least significant first; trailing zero bytes are dropped.
 * Held as little-endian bytes, which is also the wire form of a little-endian message.
 */
import { PvaDecodeError, type Reader, type Writer } from "./wire.ts";

/** Largest bit number accepted from a peer (no real structure has this many fields). */
export const MAX_BIT = 1 << 20;

export class BitSet {
  bytes: Uint8Array;
  constructor(bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(8);
  }

  static of(...bits: number[]): BitSet {
    const b = new BitSet();
    for (const i of bits) b.set(i);
    return b;
  }

  get(i: number): boolean {
    const byte = i >> 3;
    return byte < this.bytes.length && ((this.bytes[byte] ?? 0) & (1 << (i & 7))) !== 0;
  }

  set(i: number): this {
    const byte = i >> 3;
    if (byte >= this.bytes.length) {
      const b = new Uint8Array(Math.max(byte + 1, this.bytes.length * 2));
      b.set(this.bytes);
      this.bytes = b;
    }
    this.bytes[byte] = (this.bytes[byte] ?? 0) | (1 << (i & 7));
    return this;
  }

  /** Sets bits [from, to). */
  setRange(from: number, to: number): this {
    for (let i = from; i < to; i++) this.set(i);
    return this;
  }

  or(o: BitSet): this {
    if (o.bytes.length > this.bytes.length) {
      const b = new Uint8Array(o.bytes.length);
      b.set(this.bytes);
      this.bytes = b;
    }
    for (let i = 0; i < o.bytes.length; i++)
      this.bytes[i] = (this.bytes[i] ?? 0) | (o.bytes[i] ?? 0);
    return this;
  }

  /** A new set with the bits present in both. */
  and(o: BitSet): BitSet {
    const n = Math.min(this.bytes.length, o.bytes.length);
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (this.bytes[i] ?? 0) & (o.bytes[i] ?? 0);
    return new BitSet(b);
  }

  /** A string naming exactly the set bits (trailing zero bytes ignored): a cache key. */
  key(): string {
    let n = this.bytes.length;
    while (n > 0 && this.bytes[n - 1] === 0) n--;
    return String.fromCharCode(...this.bytes.subarray(0, n));
  }

  isEmpty(): boolean {
    for (const x of this.bytes) if (x !== 0) return false;
    return true;
  }

  clone(): BitSet {
    return new BitSet(this.bytes.slice());
  }

  /** Set bit numbers in ascending order. */
  toArray(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.bytes.length; i++) {
      const x = this.bytes[i] ?? 0;
      if (x === 0) continue;
      for (let j = 0; j < 8; j++) if (x & (1 << j)) out.push(i * 8 + j);
    }
    return out;
  }

  encode(w: Writer): void {
    let n = this.bytes.length;
    while (n > 0 && this.bytes[n - 1] === 0) n--;
    w.size(n);
    const words = n >> 3;
    const p = w.ensure(n);
    // Byte by byte (sets are a few bytes): a subarray per encode was a heap object per reply.
    const b = this.bytes;
    const out = w.buf;
    if (w.le) for (let i = 0; i < n; i++) out[p + i] = b[i] as number;
    else {
      // Big-endian: each whole 64-bit word is byte-reversed; the tail bytes stay in order.
      for (let k = 0; k < words; k++) {
        for (let j = 0; j < 8; j++) out[p + k * 8 + j] = b[k * 8 + 7 - j] ?? 0;
      }
      for (let i = words * 8; i < n; i++) out[p + i] = b[i] as number;
    }
  }

  static decode(r: Reader): BitSet {
    const n = r.size();
    if (n < 0) return new BitSet();
    if (n > MAX_BIT / 8) throw new PvaDecodeError(`bitset of ${n} bytes`);
    const raw = r.raw(n);
    const b = new Uint8Array(Math.max(8, n));
    if (r.le) b.set(raw);
    else {
      const words = n >> 3;
      for (let k = 0; k < words; k++) {
        for (let j = 0; j < 8; j++) b[k * 8 + j] = raw[k * 8 + 7 - j] ?? 0;
      }
      b.set(raw.subarray(words * 8), words * 8);
    }
    return new BitSet(b);
  }
}
