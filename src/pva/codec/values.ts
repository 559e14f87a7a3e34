/**
 * pvData values (docs/pva.md §Values): full encoding of any type, and the partial encoding used by
 * GET/PUT data and MONITOR updates (a BitSet, then the selected fields in field-number order).
 *
 * JavaScript representation: boolean; number for every numeric scalar (64-bit integers as numbers,
 * exact to 2^53); string; numeric arrays as typed arrays (int64 arrays as Float64Array); string[]
 * and boolean[]; a structure as a plain object keyed by member name; a union as
 * `{ select: name, value }` or null; an `any` as `{ type, value }` or null; structure/union arrays
 * as arrays whose elements may be null.
 */
import { BitSet } from "./bitset.ts";
import { ARRAY, decodeType, encodeType, type TypeCache, TypeCode, type TypeDesc } from "./types.ts";
import { PvaDecodeError, type Reader, type Writer } from "./wire.ts";

export type StructValue = { [name: string]: unknown };
export interface UnionValue {
  select: string;
  value: unknown;
}
export interface AnyValue {
  type: TypeDesc;
  value: unknown;
}

const MAX_VALUE_DEPTH = 32;

function elementSize(code: number): number {
  switch (code) {
    case TypeCode.BOOLEAN:
    case TypeCode.INT8:
    case TypeCode.UINT8:
      return 1;
    case TypeCode.INT16:
    case TypeCode.UINT16:
      return 2;
    case TypeCode.INT32:
    case TypeCode.UINT32:
    case TypeCode.FLOAT32:
      return 4;
    case TypeCode.STRING:
      return 1;
    default:
      return 8;
  }
}

function readScalar(r: Reader, code: number): unknown {
  switch (code) {
    case TypeCode.BOOLEAN:
      return r.u8() !== 0;
    case TypeCode.INT8:
      return r.i8();
    case TypeCode.INT16:
      return r.i16();
    case TypeCode.INT32:
      return r.i32();
    case TypeCode.INT64:
      return r.i64();
    case TypeCode.UINT8:
      return r.u8();
    case TypeCode.UINT16:
      return r.u16();
    case TypeCode.UINT32:
      return r.u32();
    case TypeCode.UINT64:
      return r.u64();
    case TypeCode.FLOAT32:
      return r.f32();
    case TypeCode.FLOAT64:
      return r.f64();
    case TypeCode.STRING:
      return r.string();
    default:
      throw new PvaDecodeError(`not a scalar code 0x${code.toString(16)}`);
  }
}

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string") return Number(v) || 0;
  return 0;
}

function writeScalar(w: Writer, code: number, v: unknown): void {
  switch (code) {
    case TypeCode.BOOLEAN:
      w.u8(v ? 1 : 0);
      return;
    case TypeCode.INT8:
      w.i8(num(v));
      return;
    case TypeCode.INT16:
      w.i16(num(v));
      return;
    case TypeCode.INT32:
      w.i32(num(v));
      return;
    case TypeCode.INT64:
      w.i64(num(v));
      return;
    case TypeCode.UINT8:
      w.u8(num(v) & 0xff);
      return;
    case TypeCode.UINT16:
      w.u16(num(v) & 0xffff);
      return;
    case TypeCode.UINT32:
      w.u32(num(v));
      return;
    case TypeCode.UINT64:
      w.u64(num(v));
      return;
    case TypeCode.FLOAT32:
      w.f32(num(v));
      return;
    case TypeCode.FLOAT64:
      w.f64(num(v));
      return;
    case TypeCode.STRING:
      w.string(typeof v === "string" ? v : v === undefined || v === null ? "" : String(v));
      return;
  }
}

function newArray(code: number, n: number): { [i: number]: unknown; length: number } {
  switch (code) {
    case TypeCode.INT8:
      return new Int8Array(n);
    case TypeCode.INT16:
      return new Int16Array(n);
    case TypeCode.INT32:
      return new Int32Array(n);
    case TypeCode.UINT8:
      return new Uint8Array(n);
    case TypeCode.UINT16:
      return new Uint16Array(n);
    case TypeCode.UINT32:
      return new Uint32Array(n);
    case TypeCode.FLOAT32:
      return new Float32Array(n);
    case TypeCode.INT64:
    case TypeCode.UINT64:
    case TypeCode.FLOAT64:
      return new Float64Array(n);
    default:
      return new Array<unknown>(n);
  }
}

/** Reads a full value of type `t`. */
export function decodeValue(r: Reader, t: TypeDesc, cache: TypeCache | null, depth = 0): unknown {
  if (depth > MAX_VALUE_DEPTH) throw new PvaDecodeError("value nested too deep");
  const code = t.code;
  if (code < 0x80 && (code & ARRAY) === 0) return readScalar(r, code);
  if (code < 0x80) {
    const el = code & ~ARRAY;
    const n = r.count(elementSize(el));
    const out = newArray(el, n);
    for (let i = 0; i < n; i++) out[i] = readScalar(r, el);
    return out;
  }
  switch (code) {
    case TypeCode.STRUCT: {
      const o: StructValue = {};
      for (const m of t.members ?? []) o[m.name] = decodeValue(r, m.type, cache, depth + 1);
      return o;
    }
    case TypeCode.UNION: {
      const sel = r.size();
      if (sel < 0) return null;
      const m = t.members?.[sel];
      if (!m) throw new PvaDecodeError(`union selector ${sel} out of range`);
      return { select: m.name, value: decodeValue(r, m.type, cache, depth + 1) };
    }
    case TypeCode.ANY: {
      const type = decodeType(r, cache);
      if (!type) return null;
      return { type, value: decodeValue(r, type, cache, depth + 1) };
    }
    case TypeCode.STRUCT_ARRAY:
    case TypeCode.UNION_ARRAY:
    case TypeCode.ANY_ARRAY: {
      const n = r.count(1);
      const out: unknown[] = [];
      const el: TypeDesc = t.element ?? { code: TypeCode.ANY, fieldCount: 1 };
      for (let i = 0; i < n; i++) {
        out.push(r.u8() === 0 ? null : decodeValue(r, el, cache, depth + 1));
      }
      return out;
    }
    default:
      throw new PvaDecodeError(`cannot decode a value of type 0x${code.toString(16)}`);
  }
}

/** Writes a full value of type `t`; missing members are written as zero / empty. */
export function encodeValue(w: Writer, t: TypeDesc, v: unknown): void {
  const code = t.code;
  if (code < 0x80 && (code & ARRAY) === 0) {
    writeScalar(w, code, v);
    return;
  }
  if (code < 0x80) {
    const el = code & ~ARRAY;
    const a = (v ?? []) as ArrayLike<unknown>;
    const n = typeof a.length === "number" ? a.length : 0;
    w.size(n);
    if (el === TypeCode.FLOAT64 && a instanceof Float64Array) {
      const p = w.ensure(n * 8);
      for (let i = 0; i < n; i++) w.view.setFloat64(p + i * 8, a[i] ?? 0, w.le);
      return;
    }
    for (let i = 0; i < n; i++) writeScalar(w, el, a[i]);
    return;
  }
  switch (code) {
    case TypeCode.STRUCT: {
      const o = (v ?? {}) as StructValue;
      for (const m of t.members ?? []) encodeValue(w, m.type, o[m.name]);
      return;
    }
    case TypeCode.UNION: {
      const u = v as UnionValue | null | undefined;
      const idx = u ? (t.members ?? []).findIndex((m) => m.name === u.select) : -1;
      const m = t.members?.[idx];
      if (!u || !m) {
        w.size(-1);
        return;
      }
      w.size(idx);
      encodeValue(w, m.type, u.value);
      return;
    }
    case TypeCode.ANY: {
      const a = v as AnyValue | null | undefined;
      encodeType(w, a?.type ?? null);
      if (a?.type) encodeValue(w, a.type, a.value);
      return;
    }
    default: {
      const arr = (v ?? []) as unknown[];
      w.size(arr.length);
      for (const e of arr) {
        if (e === null || e === undefined) w.u8(0);
        else {
          w.u8(1);
          if (t.element) encodeValue(w, t.element, e);
          else {
            const a = e as AnyValue;
            encodeType(w, a.type);
            encodeValue(w, a.type, a.value);
          }
        }
      }
    }
  }
}

/**
 * Writes the fields of `v` whose bits are set, in field-number order. A set structure bit writes
 * the whole sub-structure and its descendants' bits are not consulted.
 */
export function encodePartial(w: Writer, t: TypeDesc, v: unknown, bits: BitSet, base = 0): void {
  if (bits.get(base)) {
    encodeValue(w, t, v);
    return;
  }
  if (t.code !== TypeCode.STRUCT) return;
  const o = (v ?? {}) as StructValue;
  const ms = t.members ?? [];
  const offs = t.offsets ?? [];
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i] as (typeof ms)[number];
    encodePartial(w, m.type, o[m.name], bits, base + (offs[i] ?? 0));
  }
}

/** Reads the fields whose bits are set into `target` (sub-objects are created as needed). */
export function decodePartial(
  r: Reader,
  t: TypeDesc,
  bits: BitSet,
  cache: TypeCache | null,
  target: StructValue,
): void {
  decodePartialInto(r, t, bits, cache, target, 0, 0);
}

function decodePartialInto(
  r: Reader,
  t: TypeDesc,
  bits: BitSet,
  cache: TypeCache | null,
  target: StructValue,
  base: number,
  depth: number,
): void {
  if (depth > MAX_VALUE_DEPTH) throw new PvaDecodeError("value nested too deep");
  const ms = t.members ?? [];
  const offs = t.offsets ?? [];
  for (let i = 0; i < ms.length; i++) {
    const m = ms[i] as (typeof ms)[number];
    const bit = base + (offs[i] ?? 0);
    if (bits.get(bit)) target[m.name] = decodeValue(r, m.type, cache);
    else if (m.type.code === TypeCode.STRUCT) {
      const end = bit + m.type.fieldCount;
      let any = false;
      for (let b = bit + 1; b < end && !any; b++) any = bits.get(b);
      if (!any) continue;
      const sub = (target[m.name] as StructValue | undefined) ?? {};
      target[m.name] = sub;
      decodePartialInto(r, m.type, bits, cache, sub, bit, depth + 1);
    }
  }
}

/** Reads a BitSet then the partial value it selects (bit 0 = the whole structure). */
export function decodeBitsAndPartial(
  r: Reader,
  t: TypeDesc,
  cache: TypeCache | null,
): { bits: BitSet; value: StructValue } {
  const bits = BitSet.decode(r);
  if (bits.get(0)) return { bits, value: decodeValue(r, t, cache) as StructValue };
  const value: StructValue = {};
  decodePartial(r, t, bits, cache, value);
  return { bits, value };
}
