/**
 * pvRequest (docs/pva.md §pvRequest): the structure every INIT carries. `field` holds nested
 * empty structures naming the selected fields (`field(value,alarm)` -> {field {value {} alarm {}}});
 * `record._options` holds options as strings (queueSize, pipeline, ackAny...).
 */
import { BitSet } from "./bitset.ts";
import { lookup, TypeCode, type TypeDesc } from "./types.ts";
import type { StructValue } from "./values.ts";

export interface PvRequest {
  /** Dotted paths selected; empty = everything. */
  fields: string[];
  /** record._options, every value as a string. */
  options: Record<string, string>;
}

/** Extracts the field paths and options from a decoded pvRequest (type + value). */
export function parsePvRequest(type: TypeDesc | null, value: unknown): PvRequest {
  const out: PvRequest = { fields: [], options: {} };
  if (!type || type.code !== TypeCode.STRUCT) return out;
  const v = (value ?? {}) as StructValue;
  for (const m of type.members ?? []) {
    if (m.name === "field" && m.type.code === TypeCode.STRUCT) collectPaths(m.type, "", out.fields);
    if (m.name === "record" && m.type.code === TypeCode.STRUCT) {
      const rec = (v.record ?? {}) as StructValue;
      const optT = (m.type.members ?? []).find((x) => x.name === "_options");
      const opts = (rec._options ?? {}) as StructValue;
      for (const o of optT?.type.members ?? []) {
        const ov = opts[o.name];
        if (ov === null || ov === undefined || typeof ov === "object") continue;
        out.options[o.name] = String(ov);
      }
    }
  }
  return out;
}

function collectPaths(t: TypeDesc, prefix: string, out: string[]): void {
  for (const m of t.members ?? []) {
    const path = prefix === "" ? m.name : `${prefix}.${m.name}`;
    const sub = m.type.members ?? [];
    if (m.type.code === TypeCode.STRUCT && sub.length > 0) collectPaths(m.type, path, out);
    else out.push(path);
    if (out.length > 1024) return;
  }
}

/**
 * The bits of `type` a request selects (every bit of each selected sub-tree, plus bit 0's
 * ancestors are not needed: partial encoding walks down from the top). Unknown names next to
 * known ones are ignored; null when the request names fields and none exists.
 */
export function selectionMask(type: TypeDesc, fields: string[]): BitSet | null {
  const mask = new BitSet();
  if (fields.length === 0) return mask.setRange(0, type.fieldCount);
  let found = false;
  for (const f of fields) {
    const hit = lookup(type, f);
    if (!hit) continue;
    found = true;
    mask.setRange(hit.bit, hit.bit + hit.type.fieldCount);
  }
  return found ? mask : null;
}

/** The bits of the leaves (non-structures) of `type`: what pvxs sets in a full update. */
export function leafMask(type: TypeDesc): BitSet {
  const m = new BitSet();
  const walk = (t: TypeDesc, base: number) => {
    if (t.code !== TypeCode.STRUCT) {
      m.set(base);
      return;
    }
    const ms = t.members ?? [];
    for (let i = 0; i < ms.length; i++)
      walk((ms[i] as (typeof ms)[number]).type, base + (t.offsets?.[i] ?? 0));
  };
  walk(type, 0);
  return m;
}
