/**
 * Encoding a PV's state as any DBR type for reads and monitor updates (big-endian wire form),
 * with rsrv's conversions from the PV's native kind. Layouts come from dbr-layout.ts, text rules
 * from dbr-text.ts. See docs/ca-protocol-facts.md "DBR types" and "Conversions".
 */
import type { PvKind, PvMeta, PvValue, Timestamp } from "../../pv/types.ts";
import { ECA } from "./constants.ts";
import {
  DBR,
  DBR_VALUE_OFFSET,
  dbrElementKind,
  dbrPayloadSize,
  ELEM,
  ELEM_SIZE,
  EPICS_EPOCH_OFFSET,
  isValidDbrType,
  MAX_ENUM_STRING_SIZE,
  MAX_STRING_SIZE,
  MAX_UNITS_SIZE,
} from "./dbr-layout.ts";
import {
  className,
  enumString,
  formatDouble,
  parseLeadingNumber,
  stateCount,
  toFloat32,
} from "./dbr-text.ts";
import { pad8 } from "./header.ts";

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

const textEncoder = new TextEncoder();

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

/**
 * Encodes a PV's current state as DBR type `dbrType` with `requestedCount` elements (0 = the
 * valid elements, 0 included: docs/ca-protocol-facts.md, "Dynamic arrays"). Returns the
 * zero-padded payload and the count for the reply header (never above src.count), or `{error}` with an ECA code (BADTYPE for invalid or
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
  // Count 0 asks for the valid elements, however many (0 included); CLASS_NAME is not an array of
  // the PV's values, so rsrv answers it with the channel's element count.
  const dynamic = requestedCount === 0;
  let count = dynamic ? valid : Math.min(requestedCount, src.count);
  if (dbrType === DBR.CLASS_NAME && dynamic) count = src.count;
  const nValid = Math.min(valid, count);
  const out = new Uint8Array(dbrReplySize(dbrType, count));
  const elem = dbrElementKind(dbrType);
  const valueOff = DBR_VALUE_OFFSET[dbrType] ?? 0;

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

/**
 * Padded payload bytes of a reply with `count` elements: the metadata part and the elements. A
 * count-0 reply (an empty dynamic array) carries the metadata part only — no bytes at all for a
 * plain type — as rsrv sends it.
 */
export function dbrReplySize(dbrType: number, count: number): number {
  if (count === 0) return pad8(DBR_VALUE_OFFSET[dbrType] ?? 0);
  return pad8(dbrPayloadSize(dbrType, count));
}
