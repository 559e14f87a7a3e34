/**
 * Decoding a WRITE/WRITE_NOTIFY payload of any DBR type into a value of the written PV's native
 * kind, with rsrv's conversions. See docs/ca-protocol-facts.md "Conversions".
 */
import type { PvKind, PvMeta, PvValue } from "../../pv/types.ts";
import { ECA } from "./constants.ts";
import {
  DBR,
  DBR_VALUE_OFFSET,
  dbrElementKind,
  ELEM,
  ELEM_SIZE,
  isValidDbrType,
  MAX_STRING_SIZE,
} from "./dbr-layout.ts";
import { formatDouble, parseLeadingNumber } from "./dbr-text.ts";

const textDecoder = new TextDecoder();

/** What decodePut needs from the written PV. */
export interface PutTarget {
  kind: PvKind;
  count: number;
  meta: Readonly<PvMeta>;
}

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
  const valueOff = DBR_VALUE_OFFSET[dbrType] ?? 0;
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

// Scratch for reading one big-endian number out of a message where it lies (no view per write).
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

/**
 * decodePut's answer for the common write — one element of a plain numeric DBR type (SHORT,
 * FLOAT, ENUM, CHAR, LONG, DOUBLE) to a numeric scalar (double, long or char) — read in place
 * from `bytes` at `off` (`size` payload bytes): the value, or null when the write is not of that
 * form (decodePut then answers it, errors included). Allocates nothing.
 */
export function decodePlainScalarAt(
  dbrType: number,
  count: number,
  bytes: Uint8Array,
  off: number,
  size: number,
  target: PutTarget,
): number | null {
  if (count !== 1 || target.count !== 1 || dbrType < DBR.SHORT || dbrType > DBR.DOUBLE) {
    return null;
  }
  const kind = target.kind;
  if (kind !== "double" && kind !== "long" && kind !== "char") return null;
  const esize = ELEM_SIZE[dbrType] as number;
  if (size < esize) return null;
  for (let i = 0; i < esize; i++) scratch[i] = bytes[off + i] as number;
  return castTo(kind, readNumber(scratchView, 0, dbrType));
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
