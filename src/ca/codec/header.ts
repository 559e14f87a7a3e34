/**
 * CA message headers: the 16-byte standard form and the 24-byte extended form used when the padded
 * payload or the element count reaches 0xFFFF (only towards peers of minor version ≥ 9).
 */
import { EXTENDED_HEADER_SIZE, HEADER_SIZE } from "./constants.ts";

/** A decoded header; payloadSize and count hold the real values whichever wire form was used. */
export interface CaHeader {
  command: number;
  payloadSize: number;
  dataType: number;
  count: number;
  p1: number;
  p2: number;
}

/** Rounds n up to the next multiple of 8 (CA payloads are 8-byte aligned). */
export function pad8(n: number): number {
  return (n + 7) & ~7;
}

/** Header size needed for a (padded) payload size and element count. */
export function headerSizeFor(payloadSize: number, count: number): 16 | 24 {
  return payloadSize >= 0xffff || count >= 0xffff ? EXTENDED_HEADER_SIZE : HEADER_SIZE;
}

/**
 * The header size a message needs (16 or 24), or RangeError when the extended form is needed but
 * the peer cannot take it, or a field does not fit its wire width. Shared by both header writers.
 */
function checkedHeaderSize(h: CaHeader, extendedAllowed: boolean): 16 | 24 {
  const size = headerSizeFor(h.payloadSize, h.count);
  if (size === EXTENDED_HEADER_SIZE && !extendedAllowed) {
    throw new RangeError(
      `payload ${h.payloadSize} / count ${h.count} needs the extended header, which the peer does not support`,
    );
  }
  if (h.payloadSize < 0 || h.count < 0 || h.payloadSize > 0xffffffff || h.count > 0xffffffff) {
    throw new RangeError(`header size/count out of range: ${h.payloadSize}/${h.count}`);
  }
  return size;
}

/**
 * Writes a header at `offset`; returns the bytes written (16 or 24). Throws RangeError when the
 * extended form is needed but the peer cannot take it, or a field does not fit its wire width.
 */
export function writeHeader(
  view: DataView,
  offset: number,
  h: CaHeader,
  extendedAllowed: boolean,
): number {
  const size = checkedHeaderSize(h, extendedAllowed);
  view.setUint16(offset, h.command);
  view.setUint16(offset + 4, h.dataType);
  view.setUint32(offset + 8, h.p1 >>> 0);
  view.setUint32(offset + 12, h.p2 >>> 0);
  if (size === HEADER_SIZE) {
    view.setUint16(offset + 2, h.payloadSize);
    view.setUint16(offset + 6, h.count);
    return HEADER_SIZE;
  }
  view.setUint16(offset + 2, 0xffff);
  view.setUint16(offset + 6, 0);
  view.setUint32(offset + 16, h.payloadSize);
  view.setUint32(offset + 20, h.count);
  return EXTENDED_HEADER_SIZE;
}

/**
 * Reads a header at `offset` with `available` bytes readable there. Returns null when more bytes
 * are needed. Like rsrv, the extended form is recognised by postsize 0xFFFF alone (when allowed).
 */
export function readHeader(
  view: DataView,
  offset: number,
  available: number,
  extendedAllowed: boolean,
): { header: CaHeader; headerSize: 16 | 24 } | null {
  if (available < HEADER_SIZE) return null;
  const command = view.getUint16(offset);
  const size16 = view.getUint16(offset + 2);
  const dataType = view.getUint16(offset + 4);
  const count16 = view.getUint16(offset + 6);
  const p1 = view.getUint32(offset + 8);
  const p2 = view.getUint32(offset + 12);
  if (size16 === 0xffff && extendedAllowed) {
    if (available < EXTENDED_HEADER_SIZE) return null;
    return {
      header: {
        command,
        payloadSize: view.getUint32(offset + 16),
        dataType,
        count: view.getUint32(offset + 20),
        p1,
        p2,
      },
      headerSize: EXTENDED_HEADER_SIZE,
    };
  }
  return {
    header: { command, payloadSize: size16, dataType, count: count16, p1, p2 },
    headerSize: HEADER_SIZE,
  };
}

/** Serialises a header alone into a new array (16 or 24 bytes). */
export function encodeHeader(h: CaHeader, extendedAllowed: boolean): Uint8Array {
  const out = new Uint8Array(headerSizeFor(h.payloadSize, h.count));
  writeHeaderBytes(out, 0, h, extendedAllowed);
  return out;
}

function put16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function put32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** Big-endian u16 at `o` of a byte array (no DataView: see writeHeaderBytes). */
export function get16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Big-endian u32 at `o` of a byte array. */
export function get32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * A standard 16-byte header written field by field, without a header object: for the hot paths
 * (connect storm replies, search replies) where payloadSize and count are known to fit 16 bits.
 */
export function writeStandardHeader(
  view: DataView,
  offset: number,
  command: number,
  payloadSize: number,
  dataType: number,
  count: number,
  p1: number,
  p2: number,
): void {
  view.setUint16(offset, command);
  view.setUint16(offset + 2, payloadSize);
  view.setUint16(offset + 4, dataType);
  view.setUint16(offset + 6, count);
  view.setUint32(offset + 8, p1 >>> 0);
  view.setUint32(offset + 12, p2 >>> 0);
}

/**
 * writeHeader on a Uint8Array. Same result; avoids creating a DataView, which for a small fresh
 * array makes the engine materialise its ArrayBuffer (the dominant cost of small messages).
 */
export function writeHeaderBytes(
  out: Uint8Array,
  offset: number,
  h: CaHeader,
  extendedAllowed: boolean,
): number {
  const size = checkedHeaderSize(h, extendedAllowed);
  put16(out, offset, h.command);
  put16(out, offset + 4, h.dataType);
  put32(out, offset + 8, h.p1 >>> 0);
  put32(out, offset + 12, h.p2 >>> 0);
  if (size === HEADER_SIZE) {
    put16(out, offset + 2, h.payloadSize);
    put16(out, offset + 6, h.count);
    return HEADER_SIZE;
  }
  put16(out, offset + 2, 0xffff);
  put16(out, offset + 6, 0);
  put32(out, offset + 16, h.payloadSize);
  put32(out, offset + 20, h.count);
  return EXTENDED_HEADER_SIZE;
}

/** readHeader on a Uint8Array (no DataView needed); same rules and result. */
export function readHeaderBytes(
  bytes: Uint8Array,
  offset: number,
  available: number,
  extendedAllowed: boolean,
): { header: CaHeader; headerSize: 16 | 24 } | null {
  if (available < HEADER_SIZE) return null;
  const size16 = get16(bytes, offset + 2);
  const extended = size16 === 0xffff && extendedAllowed;
  if (extended && available < EXTENDED_HEADER_SIZE) return null;
  return {
    header: {
      command: get16(bytes, offset),
      payloadSize: extended ? get32(bytes, offset + 16) : size16,
      dataType: get16(bytes, offset + 4),
      count: extended ? get32(bytes, offset + 20) : get16(bytes, offset + 6),
      p1: get32(bytes, offset + 8),
      p2: get32(bytes, offset + 12),
    },
    headerSize: extended ? EXTENDED_HEADER_SIZE : HEADER_SIZE,
  };
}
