/**
 * The 8-byte pvAccess header and the TCP stream framer (docs/pva.md §Header). Each message carries
 * its own byte order (flag 0x80) and a peer may mix orders on one connection, so the framer reads
 * the size of every message with that message's flag. Segmented runs (first/middle/last) are
 * joined into one payload before the message is handed on.
 */
import { PvaDecodeError } from "./wire.ts";

export const MAGIC = 0xca;
export const PVA_VERSION = 2;

export const Flag = {
  CONTROL: 0x01,
  SEGMENT_MASK: 0x30,
  SEG_FIRST: 0x10,
  SEG_LAST: 0x20,
  SEG_MIDDLE: 0x30,
  SERVER: 0x40,
  BIG_ENDIAN: 0x80,
} as const;

/** Application command codes. */
export const Cmd = {
  BEACON: 0,
  CONNECTION_VALIDATION: 1,
  ECHO: 2,
  SEARCH: 3,
  SEARCH_RESPONSE: 4,
  AUTHNZ: 5,
  ACL_CHANGE: 6,
  CREATE_CHANNEL: 7,
  DESTROY_CHANNEL: 8,
  CONNECTION_VALIDATED: 9,
  GET: 10,
  PUT: 11,
  PUT_GET: 12,
  MONITOR: 13,
  ARRAY: 14,
  DESTROY_REQUEST: 15,
  PROCESS: 16,
  GET_FIELD: 17,
  MESSAGE: 18,
  MULTIPLE_DATA: 19,
  RPC: 20,
  CANCEL_REQUEST: 21,
  ORIGIN_TAG: 22,
} as const;

/** Control message codes (flag 0x01; no payload, the size field carries a value). */
export const Ctrl = { SET_MARKER: 0, ACK_MARKER: 1, SET_BYTE_ORDER: 2 } as const;

/** Operation subcommand bits. */
export const Sub = {
  INIT: 0x08,
  DESTROY: 0x10,
  GET: 0x40,
  PROCESS: 0x04,
  /** PUT_GET get-put, or MONITOR pipeline ack / pipelined INIT. */
  ACK: 0x80,
} as const;

export interface Header {
  flags: number;
  command: number;
  /** Payload size for application messages; the carried value for control messages. */
  size: number;
  le: boolean;
  control: boolean;
  server: boolean;
  segment: number;
}

export const HEADER_SIZE = 8;

/** Decodes the header at `off`; throws PvaDecodeError for a bad magic or version 0. */
export function decodeHeader(b: Uint8Array, off = 0): Header {
  if (b.length - off < HEADER_SIZE) throw new PvaDecodeError("truncated header");
  if (b[off] !== MAGIC) throw new PvaDecodeError(`bad magic 0x${(b[off] ?? 0).toString(16)}`);
  if (b[off + 1] === 0) throw new PvaDecodeError("protocol version 0");
  const flags = b[off + 2] ?? 0;
  const le = (flags & Flag.BIG_ENDIAN) === 0;
  // The size from the bytes, not a DataView: that would make JSC allocate the chunk's ArrayBuffer.
  const s0 = b[off + 4] ?? 0;
  const s1 = b[off + 5] ?? 0;
  const s2 = b[off + 6] ?? 0;
  const s3 = b[off + 7] ?? 0;
  const size =
    (le ? s0 | (s1 << 8) | (s2 << 16) | (s3 << 24) : (s0 << 24) | (s1 << 16) | (s2 << 8) | s3) >>>
    0;
  return {
    flags,
    command: b[off + 3] ?? 0,
    size,
    le,
    control: (flags & Flag.CONTROL) !== 0,
    server: (flags & Flag.SERVER) !== 0,
    segment: flags & Flag.SEGMENT_MASK,
  };
}

/** Writes a header into `b` at `off`. */
export function encodeHeader(
  b: Uint8Array,
  off: number,
  flags: number,
  command: number,
  size: number,
): void {
  b[off] = MAGIC;
  b[off + 1] = PVA_VERSION;
  b[off + 2] = flags;
  b[off + 3] = command;
  new DataView(b.buffer, b.byteOffset + off + 4, 4).setUint32(
    0,
    size >>> 0,
    (flags & Flag.BIG_ENDIAN) === 0,
  );
}

/** A whole message: control, or application with its (joined) payload. */
export interface Message {
  command: number;
  flags: number;
  le: boolean;
  control: boolean;
  /** The carried value of a control message; payload length otherwise. */
  size: number;
  payload: Uint8Array;
}

/**
 * Splits a TCP byte stream into messages. push() returns the complete messages; a framing error
 * (bad magic, oversized message, broken segmentation) throws PvaDecodeError and the connection
 * must be closed, since the stream cannot be resynchronised. Memory is bounded by `maxMessage`:
 * neither a single message nor a segmented run may exceed it.
 */
export class Framer {
  // Bytes of an incomplete message, kept as chunks and joined only once `need` bytes are here, so
  // a message dripped in small pieces costs linear, not quadratic, copying.
  private chunks: Uint8Array[] = [];
  private have = 0;
  private need = HEADER_SIZE;
  private segCommand = -1;
  private segParts: Uint8Array[] = [];
  private segBytes = 0;

  constructor(readonly maxMessage: number) {}

  /** Bytes held waiting for the rest of a message. */
  get buffered(): number {
    return this.have + this.segBytes;
  }

  push(data: Uint8Array): Message[] {
    if (this.have + data.length < this.need) {
      this.chunks.push(data.slice());
      this.have += data.length;
      return [];
    }
    let buf = data;
    if (this.have > 0) {
      buf = new Uint8Array(this.have + data.length);
      let p = 0;
      for (const c of this.chunks) {
        buf.set(c, p);
        p += c.length;
      }
      buf.set(data, p);
    }
    this.chunks = [];
    this.have = 0;
    this.need = HEADER_SIZE;
    const out: Message[] = [];
    let off = 0;
    while (buf.length - off >= HEADER_SIZE) {
      const h = decodeHeader(buf, off);
      if (h.control) {
        out.push({ ...msgBase(h), payload: EMPTY });
        off += HEADER_SIZE;
        continue;
      }
      if (h.size > this.maxMessage) {
        throw new PvaDecodeError(`message of ${h.size} bytes exceeds ${this.maxMessage}`);
      }
      if (buf.length - off < HEADER_SIZE + h.size) {
        this.need = HEADER_SIZE + h.size;
        break;
      }
      // Copy: the socket may reuse its buffer, and messages may outlive this call (PUT payloads).
      const payload = buf.slice(off + HEADER_SIZE, off + HEADER_SIZE + h.size);
      off += HEADER_SIZE + h.size;
      const m = this.segment(h, payload);
      if (m) out.push(m);
    }
    if (off < buf.length) {
      this.chunks.push(buf.slice(off));
      this.have = buf.length - off;
    }
    return out;
  }

  private segment(h: Header, payload: Uint8Array): Message | null {
    if (h.segment === 0) {
      if (this.segCommand >= 0)
        throw new PvaDecodeError("unsegmented message inside a segment run");
      return { ...msgBase(h), payload };
    }
    if (h.segment === Flag.SEG_FIRST) {
      if (this.segCommand >= 0) throw new PvaDecodeError("segment run started twice");
      this.segCommand = h.command;
    } else if (this.segCommand !== h.command) {
      throw new PvaDecodeError("continuation segment without a matching first segment");
    }
    this.segBytes += payload.length;
    if (this.segBytes > this.maxMessage) {
      throw new PvaDecodeError(`segmented message exceeds ${this.maxMessage} bytes`);
    }
    this.segParts.push(payload);
    if (h.segment !== Flag.SEG_LAST) return null;
    const joined = new Uint8Array(this.segBytes);
    let p = 0;
    for (const part of this.segParts) {
      joined.set(part, p);
      p += part.length;
    }
    this.segCommand = -1;
    this.segParts = [];
    this.segBytes = 0;
    return { ...msgBase(h), size: joined.length, payload: joined };
  }
}

const EMPTY = new Uint8Array(0);

function msgBase(h: Header): Omit<Message, "payload"> {
  return { command: h.command, flags: h.flags, le: h.le, control: h.control, size: h.size };
}

/**
 * Splits a UDP datagram into its messages (e.g. ORIGIN_TAG + SEARCH). Control and segmented
 * messages are skipped, as pvxs does; a bad header or overrun throws PvaDecodeError.
 */
export function splitDatagram(b: Uint8Array): Message[] {
  const out: Message[] = [];
  let off = 0;
  while (off < b.length) {
    const h = decodeHeader(b, off);
    const size = h.control ? 0 : h.size;
    if (off + HEADER_SIZE + size > b.length) throw new PvaDecodeError("truncated datagram");
    if (!h.control && h.segment === 0) {
      out.push({
        ...msgBase(h),
        payload: b.subarray(off + HEADER_SIZE, off + HEADER_SIZE + size),
      });
    }
    off += HEADER_SIZE + size;
  }
  return out;
}
