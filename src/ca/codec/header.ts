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
 * Writes a header at `offset`; returns the bytes written (16 or 24). Throws RangeError when the
 * extended form is needed but the peer cannot take it, or a field does not fit its wire width.
 */
export function writeHeader(
  view: DataView,
  offset: number,
  h: CaHeader,
  extendedAllowed: boolean,
): number {
  const size = headerSizeFor(h.payloadSize, h.count);
  if (size === EXTENDED_HEADER_SIZE && !extendedAllowed) {
    throw new RangeError(
      `payload ${h.payloadSize} / count ${h.count} needs the extended header, which the peer does not support`,
    );
  }
  if (h.payloadSize < 0 || h.count < 0 || h.payloadSize > 0xffffffff || h.count > 0xffffffff) {
    throw new RangeError(`header size/count out of range: ${h.payloadSize}/${h.count}`);
  }
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
  writeHeader(new DataView(out.buffer), 0, h, extendedAllowed);
  return out;
}
