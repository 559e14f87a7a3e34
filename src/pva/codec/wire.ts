/**
 * Byte-level reading and writing for pvAccess: fixed-width numbers in either byte order, the
 * Size encoding (1 or 5 bytes, 9 accepted), strings, 16-byte addresses and Status. Sans-I/O: a
 * Reader walks one message payload and throws PvaDecodeError on any overrun or bad value, so a
 * truncated or hostile message can only ever produce that one error type.
 */

/** A message could not be decoded; the message says where. Never escapes as anything else. */
export class PvaDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PvaDecodeError";
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: false });
const enc = new TextEncoder();

/**
 * Reads one payload; `le` is the byte order given by that message's header flag.
 *
 * Integers up to 32 bits are read from the bytes directly and the DataView is made only for 64-bit
 * and float fields: a DataView needs the payload's ArrayBuffer, and asking a small typed array
 * (the framer's copy of each payload) for it makes JSC allocate one out of line. For every request
 * that showed up as memory the GC and JSC's block warm-up thread then worked on, on the CPUs the
 * GET round trip needs (docs/pva.md §Scheduling).
 */
export class Reader {
  private dv: DataView | null = null;
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    public le: boolean,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  get view(): DataView {
    this.dv ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    return this.dv;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): number {
    const p = this.pos;
    if (n < 0 || p + n > this.end) {
      throw new PvaDecodeError(`truncated: need ${n} bytes at ${p}, have ${this.end - p}`);
    }
    this.pos = p + n;
    return p;
  }

  u8(): number {
    return this.bytes[this.need(1)] as number;
  }
  i8(): number {
    return ((this.bytes[this.need(1)] as number) << 24) >> 24;
  }
  u16(): number {
    const p = this.need(2);
    const b = this.bytes;
    const a0 = b[p] as number;
    const a1 = b[p + 1] as number;
    return this.le ? a0 | (a1 << 8) : (a0 << 8) | a1;
  }
  i16(): number {
    return (this.u16() << 16) >> 16;
  }
  u32(): number {
    return this.i32() >>> 0;
  }
  i32(): number {
    const p = this.need(4);
    const b = this.bytes;
    const a0 = b[p] as number;
    const a1 = b[p + 1] as number;
    const a2 = b[p + 2] as number;
    const a3 = b[p + 3] as number;
    return this.le
      ? a0 | (a1 << 8) | (a2 << 16) | (a3 << 24)
      : (a0 << 24) | (a1 << 16) | (a2 << 8) | a3;
  }
  /** int64 as a number (exact up to 2^53, which covers timestamps and counters). */
  i64(): number {
    return Number(this.view.getBigInt64(this.need(8), this.le));
  }
  u64(): number {
    return Number(this.view.getBigUint64(this.need(8), this.le));
  }
  f32(): number {
    return this.view.getFloat32(this.need(4), this.le);
  }
  f64(): number {
    return this.view.getFloat64(this.need(8), this.le);
  }

  raw(n: number): Uint8Array {
    const p = this.need(n);
    return this.bytes.subarray(p, p + n);
  }

  /** Size: 0..253 in one byte, 0xFE + uint32 (or the 9-byte form), 0xFF = null (-1). */
  size(): number {
    const b = this.u8();
    if (b < 0xfe) return b;
    if (b === 0xff) return -1;
    const n = this.i32();
    if (n === 0x7fffffff) {
      const big = this.i64();
      if (big < 0 || big > Number.MAX_SAFE_INTEGER) throw new PvaDecodeError("size out of range");
      return big;
    }
    if (n < 0) throw new PvaDecodeError(`negative size ${n}`);
    return n;
  }

  /** A count that must fit in what is left, each element taking at least `minBytes`. */
  count(minBytes: number): number {
    const n = this.size();
    if (n < 0) throw new PvaDecodeError("null where a count was expected");
    if (n * minBytes > this.remaining) {
      throw new PvaDecodeError(`count ${n} exceeds the ${this.remaining} bytes left`);
    }
    return n;
  }

  /** String: Size + UTF-8 bytes; a null size reads as "". */
  string(): string {
    const n = this.size();
    if (n <= 0) return "";
    return utf8.decode(this.raw(n));
  }

  /** A 16-byte address as dotted IPv4 when IPv4-mapped or all zero, else as hex IPv6. */
  address(): string {
    return formatAddress(this.raw(16));
  }

  status(): Status {
    const t = this.u8();
    if (t === 0xff) return OK;
    if (t > 3) throw new PvaDecodeError(`bad status type ${t}`);
    const message = this.string();
    const stack = this.string();
    return { type: t as StatusType, message, stack };
  }
}

/** Status types; OK and WARNING mean success. */
export const StatusType = { OK: 0, WARNING: 1, ERROR: 2, FATAL: 3 } as const;
export type StatusType = (typeof StatusType)[keyof typeof StatusType];

export interface Status {
  type: StatusType;
  message: string;
  stack: string;
}

export const OK: Status = Object.freeze({ type: 0, message: "", stack: "" }) as Status;

export function errorStatus(message: string, type: StatusType = StatusType.ERROR): Status {
  return { type, message, stack: "" };
}

export function isSuccess(s: Status): boolean {
  return s.type === StatusType.OK || s.type === StatusType.WARNING;
}

/** Growable output buffer; little-endian unless told otherwise (servers choose their order). */
export class Writer {
  buf: Uint8Array;
  view: DataView;
  pos = 0;
  constructor(
    initial = 256,
    public le = true,
  ) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  ensure(n: number): number {
    const p = this.pos;
    if (p + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < p + n) cap *= 2;
      const b = new Uint8Array(cap);
      b.set(this.buf.subarray(0, p));
      this.buf = b;
      this.view = new DataView(b.buffer);
    }
    this.pos = p + n;
    return p;
  }

  u8(v: number): this {
    const p = this.ensure(1);
    this.view.setUint8(p, v);
    return this;
  }
  i8(v: number): this {
    const p = this.ensure(1);
    this.view.setInt8(p, v);
    return this;
  }
  u16(v: number): this {
    const p = this.ensure(2);
    this.view.setUint16(p, v, this.le);
    return this;
  }
  i16(v: number): this {
    const p = this.ensure(2);
    this.view.setInt16(p, v, this.le);
    return this;
  }
  u32(v: number): this {
    const p = this.ensure(4);
    this.view.setUint32(p, v >>> 0, this.le);
    return this;
  }
  i32(v: number): this {
    const p = this.ensure(4);
    this.view.setInt32(p, v | 0, this.le);
    return this;
  }
  i64(v: number): this {
    const p = this.ensure(8);
    this.view.setBigInt64(p, BigInt(Math.trunc(Number.isFinite(v) ? v : 0)), this.le);
    return this;
  }
  u64(v: number): this {
    const n = Number.isFinite(v) && v > 0 ? Math.trunc(v) : 0;
    const p = this.ensure(8);
    this.view.setBigUint64(p, BigInt(n), this.le);
    return this;
  }
  f32(v: number): this {
    const p = this.ensure(4);
    this.view.setFloat32(p, v, this.le);
    return this;
  }
  f64(v: number): this {
    const p = this.ensure(8);
    this.view.setFloat64(p, v, this.le);
    return this;
  }
  raw(b: Uint8Array): this {
    const p = this.ensure(b.length);
    this.buf.set(b, p);
    return this;
  }

  /** Size in the 1- or 5-byte form (the only forms pvxs and pvAccessCPP read); -1 = null. */
  size(n: number): this {
    if (n < 0) return this.u8(0xff);
    if (n < 0xfe) return this.u8(n);
    this.u8(0xfe);
    return this.i32(n);
  }

  string(s: string): this {
    if (s.length === 0) return this.u8(0);
    // ASCII fast path: most names and ids are ASCII, and encodeInto avoids a temporary.
    const p = this.pos;
    this.ensure(5 + s.length * 3);
    const { written } = enc.encodeInto(s, this.buf.subarray(p + 5));
    if (written < 0xfe) {
      this.buf[p] = written;
      this.buf.copyWithin(p + 1, p + 5, p + 5 + written);
      this.pos = p + 1 + written;
    } else {
      this.buf[p] = 0xfe;
      this.view.setInt32(p + 1, written, this.le);
      this.pos = p + 5 + written;
    }
    return this;
  }

  status(s: Status): this {
    if (s.type === StatusType.OK && s.message === "" && s.stack === "") return this.u8(0xff);
    this.u8(s.type);
    this.string(s.message);
    return this.string(s.stack);
  }

  /** IPv4 dotted (or "::") as a 16-byte IPv4-mapped address. */
  address(ip: string): this {
    const p = this.ensure(16);
    this.buf.fill(0, p, p + 16);
    if (ip === "::" || ip === "") return this;
    const parts = ip.split(".").map(Number);
    this.buf[p + 10] = 0xff;
    this.buf[p + 11] = 0xff;
    for (let i = 0; i < 4; i++) this.buf[p + 12 + i] = (parts[i] ?? 0) & 0xff;
    return this;
  }

  /** A copy of what was written. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

/** Formats a 16-byte address: "::" when all zero, dotted IPv4 when IPv4-mapped, else hex IPv6. */
export function formatAddress(b: Uint8Array): string {
  let zero = true;
  for (let i = 0; i < 16; i++) if (b[i] !== 0) zero = false;
  if (zero) return "::";
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  return groups.join(":");
}
