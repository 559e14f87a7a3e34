/**
 * DBR layouts as libca hands them to callbacks (host byte order, C struct padding of db_access.h).
 * The client asks for the channel's native type in one of three forms (plain, TIME, CTRL); this
 * file turns one into a CaReading. Sizes and offsets are the codec's tables (dbr-layout.ts): libca
 * lays the structs out as the wire does, only in host byte order.
 */

import {
  DBR,
  DBR_SIZE,
  DBR_TYPE_COUNT,
  DBR_VALUE_OFFSET,
  DBR_VALUE_SIZE,
  dbrPayloadSize,
  ELEM_SIZE,
  EPICS_EPOCH_OFFSET,
  MAX_ENUM_STATES,
  MAX_ENUM_STRING_SIZE,
  MAX_STRING_SIZE,
  MAX_UNITS_SIZE,
} from "../src/ca/codec/dbr-layout.ts";

// The layouts are the codec's (one home: src/ca/codec/dbr-layout.ts); ffi/ re-exports what its
// users and tests need.
export {
  DBR,
  DBR_SIZE,
  DBR_TYPE_COUNT,
  DBR_VALUE_OFFSET,
  DBR_VALUE_SIZE,
  /** Bytes libca delivers for `count` elements of a DBR type (dbr_size_n). */
  dbrPayloadSize as dbrSizeN,
  EPICS_EPOCH_OFFSET,
};

// Offsets added to a native type (0..6) for the TIME and CTRL structures.
const DBR_TIME = DBR.TIME_STRING;
const DBR_CTRL = DBR.CTRL_STRING;

/** Names of the native types, as CaReading.nativeType reports them. */
export const NATIVE_NAMES = ["string", "short", "float", "enum", "char", "long", "double"] as const;

/** The DBR type carrying `native` in the form asked for. */
export function dbrTypeFor(native: number, form: "value" | "time" | "ctrl"): number {
  return native + (form === "time" ? DBR_TIME : form === "ctrl" ? DBR_CTRL : 0);
}

/** A value read over Channel Access with whatever metadata the requested form carries. */
export interface CaReading {
  value: number | string | Float64Array | Int32Array | Float32Array | Int16Array | Uint8Array;
  status?: number;
  severity?: number;
  timestamp?: Date;
  /** The exact EPICS timestamp in POSIX seconds and nanoseconds (TIME form only). */
  stamp?: { sec: number; nsec: number };
  units?: string;
  precision?: number;
  enumStrings?: string[];
  displayLimits?: { low: number; high: number };
  controlLimits?: { low: number; high: number };
  alarmLimits?: { lolo: number; low: number; high: number; hihi: number };
  /** Elements delivered. */
  count: number;
  /** Native type of the channel ("double", "long", "string", "enum", "char", "short", "float"). */
  nativeType: string;
}

const decoder = new TextDecoder();

function cString(bytes: Uint8Array, off: number, max: number): string {
  let end = off;
  const lim = Math.min(off + max, bytes.length);
  while (end < lim && bytes[end] !== 0) end++;
  return decoder.decode(bytes.subarray(off, end));
}

/**
 * Decodes one DBR structure (`bytes` starts at the structure) into a reading. Values are copied
 * out, so the caller may reuse the buffer. `asArray` forces a typed array even for one element
 * (channels whose maximum element count is above 1).
 */
export function decodeDbr(
  type: number,
  count: number,
  bytes: Uint8Array,
  asArray: boolean,
): CaReading {
  const base = type % 7;
  const form = Math.floor(type / 7);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = DBR_VALUE_OFFSET[type] ?? 0;
  const r: CaReading = { value: 0, count, nativeType: NATIVE_NAMES[base] ?? "unknown" };
  if (form >= 1) {
    r.status = dv.getInt16(0, true);
    r.severity = dv.getInt16(2, true);
  }
  if (form === 2) {
    const sec = dv.getUint32(4, true) + EPICS_EPOCH_OFFSET;
    const nsec = dv.getUint32(8, true);
    r.stamp = { sec, nsec };
    r.timestamp = new Date(sec * 1000 + Math.floor(nsec / 1e6));
  }
  if (form === 4) decodeCtrl(base, dv, bytes, r);
  r.value = decodeValue(base, count, bytes, off, asArray);
  return r;
}

function decodeValue(
  base: number,
  count: number,
  bytes: Uint8Array,
  off: number,
  asArray: boolean,
): CaReading["value"] {
  const n = Math.max(count, 0);
  if (base === DBR.STRING) return n === 0 ? "" : cString(bytes, off, MAX_STRING_SIZE);
  const size = ELEM_SIZE[base] ?? 1;
  // Copy into a fresh, aligned buffer: the source is reused and may sit at an odd offset.
  const copy = bytes.slice(off, off + n * size).buffer;
  if (!asArray && n === 1) {
    const dv = new DataView(copy);
    switch (base) {
      case DBR.SHORT:
        return dv.getInt16(0, true);
      case DBR.FLOAT:
        return dv.getFloat32(0, true);
      case DBR.ENUM:
        return dv.getUint16(0, true);
      case DBR.CHAR:
        return dv.getUint8(0);
      case DBR.LONG:
        return dv.getInt32(0, true);
      default:
        return dv.getFloat64(0, true);
    }
  }
  switch (base) {
    case DBR.SHORT:
      return new Int16Array(copy);
    case DBR.FLOAT:
      return new Float32Array(copy);
    case DBR.ENUM:
      // Enum arrays do not exist in practice; report indices as 16-bit integers.
      return new Int16Array(copy);
    case DBR.CHAR:
      return new Uint8Array(copy);
    case DBR.LONG:
      return new Int32Array(copy);
    default:
      return new Float64Array(copy);
  }
}

function decodeCtrl(base: number, dv: DataView, bytes: Uint8Array, r: CaReading): void {
  if (base === DBR.STRING) return;
  if (base === DBR.ENUM) {
    const n = Math.min(Math.max(dv.getInt16(4, true), 0), MAX_ENUM_STATES);
    r.enumStrings = [];
    for (let i = 0; i < n; i++)
      r.enumStrings.push(cString(bytes, 6 + i * MAX_ENUM_STRING_SIZE, MAX_ENUM_STRING_SIZE));
    return;
  }
  // Limits: upper_disp, lower_disp, upper_alarm, upper_warning, lower_warning, lower_alarm,
  // upper_ctrl, lower_ctrl — in the native element type, after units (and precision for floats).
  let unitsAt = 4;
  let limitsAt = 12;
  let read: (o: number) => number;
  let step: number;
  switch (base) {
    case DBR.SHORT:
      read = (o) => dv.getInt16(o, true);
      step = 2;
      break;
    case DBR.CHAR:
      read = (o) => dv.getUint8(o);
      step = 1;
      break;
    case DBR.LONG:
      read = (o) => dv.getInt32(o, true);
      step = 4;
      break;
    case DBR.FLOAT:
      r.precision = dv.getInt16(4, true);
      unitsAt = 8;
      limitsAt = 16;
      read = (o) => dv.getFloat32(o, true);
      step = 4;
      break;
    default:
      r.precision = dv.getInt16(4, true);
      unitsAt = 8;
      limitsAt = 16;
      read = (o) => dv.getFloat64(o, true);
      step = 8;
  }
  r.units = cString(bytes, unitsAt, MAX_UNITS_SIZE);
  const l = (i: number) => read(limitsAt + i * step);
  r.displayLimits = { low: l(1), high: l(0) };
  r.alarmLimits = { hihi: l(2), high: l(3), low: l(4), lolo: l(5) };
  r.controlLimits = { low: l(7), high: l(6) };
}
