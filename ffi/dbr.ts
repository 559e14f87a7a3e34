/**
 * DBR layouts as libca hands them to callbacks (host byte order, C struct padding of db_access.h).
 * The client asks for the channel's native type in one of three forms (plain, TIME, CTRL); this
 * file knows their sizes and field offsets and turns one into a CaReading.
 */

/** Native field types (DBF_xxx and DBR_xxx 0..6). */
export const DBR = { STRING: 0, SHORT: 1, FLOAT: 2, ENUM: 3, CHAR: 4, LONG: 5, DOUBLE: 6 } as const;
/** Offsets added to a native type for the STS, TIME, GR and CTRL structures. */
export const DBR_STS = 7;
export const DBR_TIME = 14;
export const DBR_GR = 21;
export const DBR_CTRL = 28;
/** Number of DBR types up to DBR_CTRL_DOUBLE. */
export const DBR_TYPE_COUNT = 35;

/** Names of the native types, as CaReading.nativeType reports them. */
export const NATIVE_NAMES = ["string", "short", "float", "enum", "char", "long", "double"] as const;

const MAX_STRING = 40;
const MAX_UNITS = 8;
const MAX_ENUM_STRING = 26;
const MAX_ENUM_STATES = 16;
/** Seconds between the POSIX epoch and the EPICS epoch (1990-01-01). */
export const EPICS_EPOCH_OFFSET = 631152000;

/** Bytes of one element of each native type. */
const ELEMENT_SIZE = [MAX_STRING, 2, 4, 2, 1, 4, 8];

/** dbr_value_offset[]: offset of the first value element in each DBR structure (types 0..34). */
// biome-ignore format: one row per DBR form reads like db_access.h
export const DBR_VALUE_OFFSET: readonly number[] = [
  // plain
  0, 0, 0, 0, 0, 0, 0,
  // STS: status, severity, [pad], value
  4, 4, 4, 4, 5, 4, 8,
  // TIME: status, severity, stamp(8), [pad], value
  12, 14, 12, 14, 15, 12, 16,
  // GR: status, severity, [precision, pad], units[8], six limits, [pad], value
  4, 24, 40, 422, 19, 36, 64,
  // CTRL: as GR plus the two control limits (CTRL_STRING is the STS layout)
  4, 28, 48, 422, 21, 44, 80,
];

/** dbr_size[] of db_access.h: size of the structure holding one element (C padding included). */
// biome-ignore format: one row per DBR form reads like db_access.h
export const DBR_SIZE: readonly number[] = [
  40, 2, 4, 2, 1, 4, 8,
  44, 6, 8, 6, 6, 8, 16,
  52, 16, 16, 16, 16, 16, 24,
  44, 26, 44, 424, 20, 40, 72,
  44, 30, 52, 424, 22, 48, 88,
];
/** dbr_value_size[]: size of one value element of each DBR type. */
export const DBR_VALUE_SIZE: readonly number[] = DBR_VALUE_OFFSET.map(
  (_, t) => ELEMENT_SIZE[t % 7] ?? 0,
);

/** The DBR type carrying `native` in the form asked for. */
export function dbrTypeFor(native: number, form: "value" | "time" | "ctrl"): number {
  return native + (form === "time" ? DBR_TIME : form === "ctrl" ? DBR_CTRL : 0);
}

/** Bytes libca delivers for `count` elements of DBR type `type` (dbr_size_n). */
export function dbrSizeN(type: number, count: number): number {
  const size = DBR_SIZE[type] ?? 0;
  return count <= 0 ? size : size + (count - 1) * (DBR_VALUE_SIZE[type] ?? 0);
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
  if (base === DBR.STRING) return n === 0 ? "" : cString(bytes, off, MAX_STRING);
  const size = ELEMENT_SIZE[base] ?? 1;
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
      r.enumStrings.push(cString(bytes, 6 + i * MAX_ENUM_STRING, MAX_ENUM_STRING));
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
  r.units = cString(bytes, unitsAt, MAX_UNITS);
  const l = (i: number) => read(limitsAt + i * step);
  r.displayLimits = { low: l(1), high: l(0) };
  r.alarmLimits = { hihi: l(2), high: l(3), low: l(4), lolo: l(5) };
  r.controlLimits = { low: l(7), high: l(6) };
}
