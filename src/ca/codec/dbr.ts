/**
 * DBR data: layouts of the 39 DBR types (db_access.h, sizes verified in the fact sheet §5) and
 * rsrv's conversions between a PV's native kind and any requested type (§9). The only place in
 * the code base that knows DBR byte layouts.
 */
import type { PvKind, PvMeta, PvValue, Timestamp } from "../../pv/types.ts";
import {
  DBR,
  ECA,
  EPICS_EPOCH_OFFSET,
  LAST_DBR_TYPE,
  MAX_ENUM_STATES,
  MAX_ENUM_STRING_SIZE,
  MAX_STRING_SIZE,
  MAX_UNITS_SIZE,
} from "./constants.ts";
import { pad8 } from "./header.ts";

/** Element kinds of DBR values (the "family": type id mod 7 for ids 0–34). */
export const ELEM = {
  STRING: 0,
  SHORT: 1,
  FLOAT: 2,
  ENUM: 3,
  CHAR: 4,
  LONG: 5,
  DOUBLE: 6,
} as const;

/** Bytes per value element, by element kind. */
const ELEM_SIZE = [40, 2, 4, 2, 1, 4, 8] as const;

// Value offset and dbr_size (struct size with one element) per DBR type 0–38.
const VALUE_OFFSET = [
  0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 5, 4, 8, 12, 14, 12, 14, 15, 12, 16, 4, 24, 40, 422, 19, 36, 64,
  4, 28, 48, 422, 21, 44, 80, 0, 0, 8, 0,
] as const;
const BASE_SIZE = [
  40, 2, 4, 2, 1, 4, 8, 44, 6, 8, 6, 6, 8, 16, 52, 16, 16, 16, 16, 16, 24, 44, 26, 44, 424, 20, 40,
  72, 44, 30, 52, 424, 22, 48, 88, 2, 2, 48, 40,
] as const;

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;

/** Whether `t` is a DBR type code (0..38). */
export function isValidDbrType(t: number): boolean {
  return Number.isInteger(t) && t >= 0 && t <= LAST_DBR_TYPE;
}

/** Element kind (ELEM) of a DBR type's value part. */
export function dbrElementKind(t: number): number {
  if (t <= DBR.CTRL_DOUBLE) return t % 7;
  if (t === DBR.PUT_ACKT || t === DBR.PUT_ACKS) return ELEM.ENUM;
  return ELEM.STRING;
}

/** Byte offset of the first value element inside a DBR structure. */
export function dbrValueOffset(t: number): number {
  return VALUE_OFFSET[t] ?? 0;
}

/** Bytes per value element of a DBR type. */
export function dbrElementSize(t: number): number {
  return ELEM_SIZE[dbrElementKind(t)] ?? 1;
}

/** Unpadded payload size for `count` elements (dbr_size_n: count ≤ 0 counts as 1). */
export function dbrPayloadSize(dbrType: number, count: number): number {
  const base = BASE_SIZE[dbrType] ?? 0;
  return count <= 1 ? base : base + (count - 1) * dbrElementSize(dbrType);
}

/** Native DBR type of a PV kind (what CREATE_CHAN reports). */
export function nativeDbrType(kind: PvKind): number {
  switch (kind) {
    case "string":
      return DBR.STRING;
    case "enum":
      return DBR.ENUM;
    case "char":
      return DBR.CHAR;
    case "long":
      return DBR.LONG;
    default:
      return DBR.DOUBLE;
  }
}

/** What encodeDbr needs from a PV; a `Pv` from src/pv satisfies it. */
export interface DbrSource {
  readonly kind: PvKind;
  readonly count: number;
  readonly length: number;
  readonly value: PvValue;
  readonly status: number;
  readonly severity: number;
  readonly timestamp: Timestamp;
  readonly meta: Readonly<PvMeta>;
}

/** What decodePut needs from the written PV. */
export interface PutTarget {
  kind: PvKind;
  count: number;
  meta: Readonly<PvMeta>;
}

// ---------------------------------------------------------------------------------------------
// Number <-> string conversions (rsrv/libCom rules)

/** Record-type-like name served for DBR_CLASS_NAME. */
export function className(kind: PvKind, count: number): string {
  if (count > 1) return "waveform";
  switch (kind) {
    case "double":
      return "ai";
    case "string":
      return "stringin";
    case "enum":
      return "mbbi";
    default:
      return "longin";
  }
}

function cExponent(s: string): string {
  // JS writes e+5, C at least two exponent digits: e+05.
  const i = s.indexOf("e");
  if (i < 0) return s;
  const sign = s[i + 1] === "-" ? "-" : "+";
  let digits = s.slice(i + 2);
  if (digits.length < 2) digits = `0${digits}`;
  return `${s.slice(0, i)}e${sign}${digits}`;
}

function cSpecial(v: number): string {
  if (Number.isNaN(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

/**
 * Formats a double like rsrv's cvtDoubleToString: fixed point with `prec` decimals when
 * |v| ≤ 1e7 and prec ≤ 8; `%*.*e` (width prec+7, ≤ 17 digits) when prec > 8 or |v| > 1e16;
 * otherwise `%.Nf` with N = min(prec, 3). NaN/Inf print as printf does ("nan", "inf").
 */
export function formatDouble(v: number, prec: number): string {
  const p = Math.max(0, Math.min(Math.trunc(prec), 0xffff));
  if (!Number.isNaN(v) && p <= 8 && v <= 1e7 && v >= -1e7) return v.toFixed(p);
  if (p > 8 || v > 1e16 || v < -1e16) {
    const q = Math.min(p, 17);
    const body = Number.isFinite(v) ? cExponent(v.toExponential(q)) : cSpecial(v);
    return body.padStart(q + 7, " ");
  }
  return Number.isFinite(v) ? v.toFixed(Math.min(p, 3)) : cSpecial(v);
}

// Leading base-10 number as strtod reads it (after whitespace); trailing text is ignored.
const NUMBER_RE =
  /^[ \t\n\v\f\r]*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))/i;

/**
 * Parses a string the way rsrv does for string→number conversions: empty (or blank) → 0; leading
 * whitespace skipped; a leading decimal number is taken and trailing text ignored. Returns null
 * when there are no digits.
 */
export function parseLeadingNumber(s: string): number | null {
  if (s.trim() === "") return 0;
  const m = NUMBER_RE.exec(s);
  if (m === null) return null;
  const t = (m[1] ?? "").toLowerCase();
  if (t.endsWith("nan")) return Number.NaN;
  if (t.includes("inf")) return t.startsWith("-") ? -Infinity : Infinity;
  return Number(t);
}

/** double → float as epicsConvertDoubleToFloat: saturates at ±FLT_MAX, tiny values to ±FLT_MIN. */
export function toFloat32(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= FLT_MAX) return v > 0 ? FLT_MAX : -FLT_MAX;
  if (a <= FLT_MIN) return v > 0 ? FLT_MIN : -FLT_MIN;
  return v;
}

/** State string served for an enum index (mbbi's get_enum_str rules). */
export function enumString(index: number, states: readonly string[] | undefined): string {
  // Without any states the PV is enum-like only in type: show the index rather than "".
  if (states === undefined || states.length === 0) return String(index);
  if (index >= 0 && index < states.length) return states[index] ?? "";
  if (index >= 0 && index < MAX_ENUM_STATES) return "";
  return "Illegal Value";
}

/** GR/CTRL_ENUM no_str: 1 + index of the highest non-empty state string, at most 16. */
function stateCount(states: readonly string[] | undefined): number {
  if (states === undefined) return 0;
  let n = Math.min(states.length, MAX_ENUM_STATES);
  while (n > 0 && (states[n - 1] ?? "") === "") n--;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Low-level writers

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Writes `s` as a NUL-terminated string into `size` bytes at `off` (truncated on a char boundary). */
function writeCString(out: Uint8Array, off: number, size: number, s: string): void {
  const max = size - 1;
  const n = s.length;
  let i = 0;
  // ASCII fast path: no allocation.
  for (; i < n && i < max; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) break;
    out[off + i] = c;
  }
  if (i < n && i < max) {
    const r = textEncoder.encodeInto(s.slice(i), out.subarray(off + i, off + max));
    i += r.written;
  }
  // The rest is zero already: encodeDbr works on a fresh zeroed buffer.
}

// Numeric value of element i of a numeric source, or null if a string source does not parse.
function numericAt(src: DbrSource, i: number): number | null {
  const v = src.value;
  if (typeof v === "number") return i === 0 ? v : 0;
  if (typeof v === "string") return i === 0 ? parseLeadingNumber(v) : 0;
  return v[i] ?? 0;
}

function stringAt(src: DbrSource, i: number): string {
  const v = src.value;
  if (typeof v === "string") return i === 0 ? v : "";
  const n = typeof v === "number" ? (i === 0 ? v : 0) : (v[i] ?? 0);
  switch (src.kind) {
    case "double":
      return formatDouble(n, src.meta.precision ?? 6);
    case "enum":
      return enumString(n, src.meta.states);
    default:
      return String(n);
  }
}

// Big-endian writers straight into the result bytes. A DataView over a small, fresh Uint8Array
// costs more than the whole encoding (the engine must materialise its ArrayBuffer), so scalars
// go through one module-level scratch view and only large arrays get a DataView of their own.
const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

function put16(out: Uint8Array, off: number, v: number): void {
  out[off] = (v >>> 8) & 0xff;
  out[off + 1] = v & 0xff;
}

function put32(out: Uint8Array, off: number, v: number): void {
  out[off] = (v >>> 24) & 0xff;
  out[off + 1] = (v >>> 16) & 0xff;
  out[off + 2] = (v >>> 8) & 0xff;
  out[off + 3] = v & 0xff;
}

function putF32(out: Uint8Array, off: number, v: number): void {
  scratch.setFloat32(0, v);
  out[off] = scratchBytes[0]!;
  out[off + 1] = scratchBytes[1]!;
  out[off + 2] = scratchBytes[2]!;
  out[off + 3] = scratchBytes[3]!;
}

function putF64(out: Uint8Array, off: number, v: number): void {
  scratch.setFloat64(0, v);
  for (let i = 0; i < 8; i++) out[off + i] = scratchBytes[i]!;
}

function writeNumber(out: Uint8Array, off: number, elem: number, v: number): void {
  switch (elem) {
    case ELEM.DOUBLE:
      putF64(out, off, v);
      return;
    case ELEM.FLOAT:
      putF32(out, off, toFloat32(v));
      return;
    case ELEM.LONG:
      put32(out, off, Number.isFinite(v) ? Math.trunc(v) | 0 : 0);
      return;
    case ELEM.SHORT:
    case ELEM.ENUM:
      put16(out, off, Number.isFinite(v) ? Math.trunc(v) & 0xffff : 0);
      return;
    default:
      out[off] = Number.isFinite(v) ? Math.trunc(v) & 0xff : 0;
  }
}

// Arrays at least this long get their own DataView (its set-up cost is then amortised).
const VIEW_THRESHOLD = 16;

// Writes nValid value elements at `off`; false when a string source does not parse as a number.
function writeValues(
  out: Uint8Array,
  off: number,
  elem: number,
  src: DbrSource,
  nValid: number,
): boolean {
  if (elem === ELEM.STRING) {
    for (let i = 0; i < nValid; i++) {
      writeCString(out, off + i * MAX_STRING_SIZE, MAX_STRING_SIZE, stringAt(src, i));
    }
    return true;
  }
  const v = src.value;
  if (typeof v === "object") {
    if (elem === ELEM.CHAR && v instanceof Uint8Array) {
      out.set(nValid === v.length ? v : v.subarray(0, nValid), off);
      return true;
    }
    if (nValid >= VIEW_THRESHOLD) {
      // Hot path for big arrays: tight loops per element kind, no per-element dispatch.
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
      if (elem === ELEM.DOUBLE) {
        for (let i = 0; i < nValid; i++) view.setFloat64(off + i * 8, v[i]!);
        return true;
      }
      if (elem === ELEM.LONG && !(v instanceof Float64Array)) {
        for (let i = 0; i < nValid; i++) view.setInt32(off + i * 4, v[i]!);
        return true;
      }
    }
    const size = ELEM_SIZE[elem] ?? 1;
    for (let i = 0; i < nValid; i++) writeNumber(out, off + i * size, elem, v[i] ?? 0);
    return true;
  }
  const n = numericAt(src, 0);
  if (n === null) return false;
  writeNumber(out, off, elem, n);
  return true;
}

// Writes the GR/CTRL limits: display high/low, alarm hihi, high, low, lolo, then control high/low.
function writeLimits(
  out: Uint8Array,
  off: number,
  elem: number,
  meta: Readonly<PvMeta>,
  ctrl: boolean,
): void {
  const size = ELEM_SIZE[elem] ?? 1;
  const isFloat = elem === ELEM.FLOAT || elem === ELEM.DOUBLE;
  // Unset alarm limits are NaN for float flavours (ai record), 0 for integer ones.
  const unset = isFloat ? Number.NaN : 0;
  const a = meta.alarm;
  // No intermediate array: this runs for every GR/CTRL encoding.
  writeNumber(out, off, elem, meta.displayHigh ?? 0);
  writeNumber(out, off + size, elem, meta.displayLow ?? 0);
  writeNumber(out, off + 2 * size, elem, a?.hihi ?? unset);
  writeNumber(out, off + 3 * size, elem, a?.high ?? unset);
  writeNumber(out, off + 4 * size, elem, a?.low ?? unset);
  writeNumber(out, off + 5 * size, elem, a?.lolo ?? unset);
  if (ctrl) {
    writeNumber(out, off + 6 * size, elem, meta.controlHigh ?? 0);
    writeNumber(out, off + 7 * size, elem, meta.controlLow ?? 0);
  }
}

function epicsSeconds(ts: Timestamp): number {
  const s = Math.trunc(ts.sec) - EPICS_EPOCH_OFFSET;
  if (!(s > 0)) return 0;
  return Math.min(s, 0xffffffff);
}

// ---------------------------------------------------------------------------------------------
// Encoding (reads)

/**
 * Encodes a PV's current state as DBR type `dbrType` with `requestedCount` elements (0 = the
 * valid elements, at least 1). Returns the zero-padded payload and the count for the reply
 * header (never above src.count), or `{error}` with an ECA code (BADTYPE for invalid or
 * write-only types, GETFAIL when a string does not convert to a number).
 */
export function encodeDbr(
  src: DbrSource,
  dbrType: number,
  requestedCount: number,
): { payload: Uint8Array; count: number } | { error: number } {
  if (!isValidDbrType(dbrType) || dbrType === DBR.PUT_ACKT || dbrType === DBR.PUT_ACKS) {
    return { error: ECA.BADTYPE };
  }
  if (!Number.isInteger(requestedCount) || requestedCount < 0) return { error: ECA.BADCOUNT };
  const valid = Math.max(0, Math.min(src.length, src.count));
  let count =
    requestedCount === 0 ? Math.max(1, valid) : Math.min(Math.max(requestedCount, 1), src.count);
  if (dbrType === DBR.CLASS_NAME) count = Math.min(count, 1);
  const nValid = Math.min(valid, count);
  const size = dbrPayloadSize(dbrType, count);
  const out = new Uint8Array(pad8(size));
  const elem = dbrElementKind(dbrType);
  const valueOff = VALUE_OFFSET[dbrType] ?? 0;

  if (dbrType === DBR.CLASS_NAME) {
    writeCString(out, 0, MAX_STRING_SIZE, className(src.kind, src.count));
    return { payload: out, count };
  }
  if (dbrType >= DBR.STS_STRING) {
    put16(out, 0, src.status);
    put16(out, 2, src.severity);
  }
  if (dbrType === DBR.STSACK_STRING) {
    // No alarm acknowledgement tracking: ACKT on (the record default), nothing unacknowledged.
    put16(out, 4, 1);
    put16(out, 6, 0);
  } else if (dbrType >= DBR.TIME_STRING && dbrType <= DBR.TIME_DOUBLE) {
    put32(out, 4, epicsSeconds(src.timestamp));
    const ns = Math.trunc(src.timestamp.nsec);
    put32(out, 8, ns >= 0 && ns < 1e9 ? ns : 0);
  } else if (dbrType >= DBR.GR_STRING && dbrType <= DBR.CTRL_DOUBLE) {
    writeGraphic(out, dbrType, elem, src);
  }
  if (!writeValues(out, valueOff, elem, src, nValid)) return { error: ECA.GETFAIL };
  return { payload: out, count };
}

/**
 * Fast path of encodeDbr for the commonest get: a plain numeric DBR type (SHORT, FLOAT, ENUM,
 * CHAR, LONG, DOUBLE) of a scalar numeric PV, written straight into `out` at `off` as one padded
 * 8-byte payload (count 1). Returns false, writing nothing, when the request is not of that shape;
 * then encodeDbr must be used. Same bytes as encodeDbr (same writers).
 */
export function encodePlainScalarInto(
  src: DbrSource,
  dbrType: number,
  out: Uint8Array,
  off: number,
): boolean {
  if (dbrType < DBR.SHORT || dbrType > DBR.DOUBLE) return false;
  if (src.count !== 1 || src.length < 1 || typeof src.value !== "number") return false;
  out.fill(0, off, off + 8);
  return writeValues(out, off, dbrElementKind(dbrType), src, 1);
}

function writeGraphic(out: Uint8Array, dbrType: number, elem: number, src: DbrSource): void {
  const ctrl = dbrType >= DBR.CTRL_STRING;
  const meta = src.meta;
  switch (elem) {
    case ELEM.STRING:
      return; // GR/CTRL_STRING use the STS_STRING layout.
    case ELEM.ENUM: {
      // Only enum PVs have state strings; other kinds read as GR_ENUM report none.
      const states = src.kind === "enum" ? meta.states : undefined;
      const n = stateCount(states);
      put16(out, 4, n);
      for (let i = 0; i < n; i++) {
        writeCString(out, 6 + i * MAX_ENUM_STRING_SIZE, MAX_ENUM_STRING_SIZE, states?.[i] ?? "");
      }
      return;
    }
    case ELEM.FLOAT:
    case ELEM.DOUBLE:
      put16(out, 4, meta.precision ?? 0);
      writeCString(out, 8, MAX_UNITS_SIZE, meta.units ?? "");
      writeLimits(out, 16, elem, meta, ctrl);
      return;
    default:
      writeCString(out, 4, MAX_UNITS_SIZE, meta.units ?? "");
      writeLimits(out, 12, elem, meta, ctrl);
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding (writes)

/** Result of decodePut: the value in the target's native representation, or an ECA error. */
export type DecodePutResult = { value: PvValue } | { error: number; message: string };

// Reads a DBR_STRING element: up to the NUL or the end of the available bytes (max 40).
function readCString(payload: Uint8Array, off: number): string {
  const end = Math.min(off + MAX_STRING_SIZE, payload.length);
  let i = off;
  let ascii = true;
  while (i < end && payload[i] !== 0) {
    if ((payload[i] ?? 0) >= 0x80) ascii = false;
    i++;
  }
  if (ascii) {
    let s = "";
    for (let j = off; j < i; j++) s += String.fromCharCode(payload[j] ?? 0);
    return s;
  }
  return textDecoder.decode(payload.subarray(off, i));
}

function readNumber(view: DataView, off: number, elem: number): number {
  switch (elem) {
    case ELEM.DOUBLE:
      return view.getFloat64(off);
    case ELEM.FLOAT:
      return view.getFloat32(off);
    case ELEM.LONG:
      return view.getInt32(off);
    case ELEM.SHORT:
      return view.getInt16(off);
    case ELEM.ENUM:
      return view.getUint16(off);
    default:
      return view.getUint8(off);
  }
}

function fail(error: number, message: string): DecodePutResult {
  return { error, message };
}

/**
 * Decodes a WRITE/WRITE_NOTIFY payload into a value for `target`, with rsrv's conversions:
 * numeric strings → numbers (leading number, trailing text ignored, empty → 0), state names or
 * decimal indices → enum index, numbers → strings with PREC. Compound types use only their value
 * part on WRITE and fail with ECA_PUTFAIL on WRITE_NOTIFY (`notify`). The count is clamped to the
 * target's; arrays come back as typed arrays of the target kind, scalars as number/string.
 * Never throws.
 */
export function decodePut(
  dbrType: number,
  count: number,
  payload: Uint8Array,
  target: PutTarget,
  notify: boolean,
): DecodePutResult {
  if (!isValidDbrType(dbrType)) return fail(ECA.BADTYPE, `invalid DBR type ${dbrType}`);
  if (dbrType === DBR.PUT_ACKT || dbrType === DBR.PUT_ACKS) {
    return fail(ECA.PUTFAIL, "alarm acknowledgement (PUT_ACKT/PUT_ACKS) is not supported");
  }
  if (dbrType === DBR.STSACK_STRING || dbrType === DBR.CLASS_NAME) {
    return fail(ECA.BADTYPE, `DBR type ${dbrType} is read-only`);
  }
  if (dbrType > DBR.DOUBLE && notify) {
    return fail(ECA.PUTFAIL, `put with completion does not accept compound DBR type ${dbrType}`);
  }
  if (!Number.isInteger(count) || count < 1)
    return fail(ECA.BADCOUNT, `bad element count ${count}`);
  const elem = dbrElementKind(dbrType);
  const esize = ELEM_SIZE[elem] ?? 1;
  const valueOff = VALUE_OFFSET[dbrType] ?? 0;
  const n = Math.min(count, target.count);
  // libca sends a DBR_STRING of count 1 as strlen+1 bytes: the last string may be short.
  const needed = elem === ELEM.STRING ? valueOff + (n - 1) * esize + 1 : valueOff + n * esize;
  if (payload.length < needed) {
    return fail(
      ECA.BADCOUNT,
      `payload of ${payload.length} bytes too short for ${n} element(s) of DBR type ${dbrType}`,
    );
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);

  if (target.kind === "string") {
    const s =
      elem === ELEM.STRING
        ? readCString(payload, valueOff)
        : numberToString(readNumber(view, valueOff, elem), elem, target);
    return { value: s };
  }
  if (target.kind === "enum") {
    if (elem === ELEM.STRING) return stringToEnum(readCString(payload, valueOff), target);
    return checkEnumIndex(castU16(readNumber(view, valueOff, elem)), target);
  }
  // Numeric targets: double, long, char (scalar or array).
  if (target.count === 1) {
    const r = elementNumber(payload, view, valueOff, elem);
    if (typeof r === "string") return fail(ECA.PUTFAIL, r);
    return { value: castTo(target.kind, r) };
  }
  const out =
    target.kind === "double"
      ? new Float64Array(n)
      : target.kind === "long"
        ? new Int32Array(n)
        : new Uint8Array(n);
  if (elem === ELEM.DOUBLE && out instanceof Float64Array) {
    for (let i = 0; i < n; i++) out[i] = view.getFloat64(valueOff + i * 8);
  } else if (elem === ELEM.CHAR && out instanceof Uint8Array) {
    out.set(payload.subarray(valueOff, valueOff + n));
  } else {
    for (let i = 0; i < n; i++) {
      const r = elementNumber(payload, view, valueOff + i * esize, elem);
      if (typeof r === "string") return fail(ECA.PUTFAIL, `element ${i}: ${r}`);
      out[i] = castTo(target.kind, r);
    }
  }
  return { value: out };
}

// A numeric element, parsing strings; a string result is the failure message.
function elementNumber(
  payload: Uint8Array,
  view: DataView,
  off: number,
  elem: number,
): number | string {
  if (elem !== ELEM.STRING) return readNumber(view, off, elem);
  const s = readCString(payload, off);
  const v = parseLeadingNumber(s);
  if (v === null) return `cannot convert "${s}" to a number`;
  return v;
}

function castTo(kind: PvKind, v: number): number {
  if (kind === "double") return v;
  if (!Number.isFinite(v)) return 0;
  if (kind === "long") return Math.trunc(v) | 0;
  return Math.trunc(v) & 0xff;
}

function castU16(v: number): number {
  return Number.isFinite(v) ? Math.trunc(v) & 0xffff : 0;
}

function numberToString(v: number, elem: number, target: PutTarget): string {
  // rsrv formats a float written to a string field with the field's precision, default 6.
  if (elem === ELEM.DOUBLE || elem === ELEM.FLOAT) {
    return formatDouble(v, target.meta.precision ?? 6);
  }
  return String(v);
}

function checkEnumIndex(index: number, target: PutTarget): DecodePutResult {
  const n = target.meta.states?.length ?? 0;
  if (n > 0 && index >= n) {
    return fail(ECA.PUTFAIL, `enum index ${index} out of range 0..${n - 1}`);
  }
  return { value: index };
}

function stringToEnum(s: string, target: PutTarget): DecodePutResult {
  const states = target.meta.states;
  if (states !== undefined && states.length > 0) {
    const idx = states.indexOf(s);
    if (idx >= 0) return { value: idx };
  }
  // Otherwise only a plain decimal index (no sign, no trailing text) is accepted, like put_enum_str.
  if (/^\d{1,5}$/.test(s)) {
    const idx = Number(s);
    if (idx <= 0xffff) return checkEnumIndex(idx, target);
  }
  const known = states && states.length > 0 ? `; states: ${states.join(", ")}` : "";
  return fail(ECA.PUTFAIL, `"${s}" is not a state of this enum${known}`);
}
