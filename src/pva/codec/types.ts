/**
 * pvData type descriptions (docs/pva.md §Types): the one-byte codes, structures and unions with
 * their ids and members, and the per-connection introspection cache (0xFD define / 0xFE reuse)
 * that pvAccessCPP peers use. Field numbers (the bit numbers of changed-field BitSets) are
 * assigned depth first: a structure is its own number and each member, sub-structures
 * included, takes the next.
 */
import { PvaDecodeError, type Reader, type Writer } from "./wire.ts";

export const TypeCode = {
  BOOLEAN: 0x00,
  INT8: 0x20,
  INT16: 0x21,
  INT32: 0x22,
  INT64: 0x23,
  UINT8: 0x24,
  UINT16: 0x25,
  UINT32: 0x26,
  UINT64: 0x27,
  FLOAT32: 0x42,
  FLOAT64: 0x43,
  STRING: 0x60,
  STRUCT: 0x80,
  UNION: 0x81,
  ANY: 0x82,
  STRUCT_ARRAY: 0x88,
  UNION_ARRAY: 0x89,
  ANY_ARRAY: 0x8a,
  NULL: 0xff,
} as const;

/** Array flag on a scalar code (variable length; bounded/fixed 0x10/0x18 are obsolete). */
export const ARRAY = 0x08;

export interface Member {
  name: string;
  type: TypeDesc;
}

/**
 * A type description. `code` is the wire byte: a scalar, a scalar array (scalar | 0x08), or one of
 * the compound codes. Structures and unions carry `id` and `members`; structure/union arrays carry
 * the element type in `element`. `fieldCount` is how many field numbers a value of it spans.
 */
export interface TypeDesc {
  code: number;
  id?: string;
  members?: Member[];
  element?: TypeDesc;
  fieldCount: number;
  /** Member name -> index, built on first lookup. */
  index?: Map<string, number>;
  /** Field number offset of each member relative to this structure (structures only). */
  offsets?: number[];
}

const SCALARS = new Set<number>([
  0x00, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x42, 0x43, 0x60,
]);

export function isScalarCode(code: number): boolean {
  return SCALARS.has(code);
}

export function scalar(code: number): TypeDesc {
  return { code, fieldCount: 1 };
}

export function scalarArray(code: number): TypeDesc {
  return { code: code | ARRAY, fieldCount: 1 };
}

/** Builds a structure type and its field numbering. */
export function struct(id: string, members: Array<[string, TypeDesc]>): TypeDesc {
  return compound(TypeCode.STRUCT, id, members);
}

export function union(id: string, members: Array<[string, TypeDesc]>): TypeDesc {
  return compound(TypeCode.UNION, id, members);
}

function compound(code: number, id: string, list: Array<[string, TypeDesc]>): TypeDesc {
  const members = list.map(([name, type]) => ({ name, type }));
  const t: TypeDesc = { code, id, members, fieldCount: 1 };
  if (code === TypeCode.STRUCT) {
    const offsets: number[] = [];
    let n = 1;
    for (const m of members) {
      offsets.push(n);
      n += m.type.fieldCount;
    }
    t.fieldCount = n;
    t.offsets = offsets;
  }
  return t;
}

/** Index of member `name` in a structure/union, or -1. */
export function memberIndex(t: TypeDesc, name: string): number {
  if (!t.members) return -1;
  if (!t.index) t.index = new Map(t.members.map((m, i) => [m.name, i]));
  return t.index.get(name) ?? -1;
}

/** The member type at a dotted path, with its field number, or undefined. */
export function lookup(t: TypeDesc, path: string): { type: TypeDesc; bit: number } | undefined {
  let cur = t;
  let bit = 0;
  if (path === "") return { type: t, bit: 0 };
  for (const part of path.split(".")) {
    if (cur.code !== TypeCode.STRUCT) return undefined;
    const i = memberIndex(cur, part);
    if (i < 0) return undefined;
    bit += cur.offsets?.[i] ?? 0;
    cur = cur.members?.[i]?.type as TypeDesc;
  }
  return { type: cur, bit };
}

/** Limits on a received type description (hostile peers). */
export interface TypeLimits {
  maxDepth: number;
  /** Nodes one connection's cache may hold in total. */
  maxCacheNodes: number;
}

export const DEFAULT_TYPE_LIMITS: TypeLimits = { maxDepth: 32, maxCacheNodes: 20_000 };

/**
 * The receive side of the introspection cache: one per connection and direction. Bounded in
 * total nodes so a peer cannot grow it without limit.
 */
export class TypeCache {
  private readonly map = new Map<number, TypeDesc>();
  private nodes = 0;
  constructor(readonly limits: TypeLimits = DEFAULT_TYPE_LIMITS) {}

  get(key: number): TypeDesc | undefined {
    return this.map.get(key);
  }

  set(key: number, t: TypeDesc, nodes: number): void {
    this.nodes += nodes;
    if (this.nodes > this.limits.maxCacheNodes) {
      throw new PvaDecodeError("introspection cache limit exceeded");
    }
    this.map.set(key, t);
  }

  get size(): number {
    return this.map.size;
  }
}

/** Reads a type description; null for the null type (0xFF). */
export function decodeType(r: Reader, cache: TypeCache | null): TypeDesc | null {
  const counter = { nodes: 0 };
  return readType(r, cache, 0, counter);
}

function readType(
  r: Reader,
  cache: TypeCache | null,
  depth: number,
  counter: { nodes: number },
): TypeDesc | null {
  const limits = cache?.limits ?? DEFAULT_TYPE_LIMITS;
  if (depth > limits.maxDepth) throw new PvaDecodeError("type description nested too deep");
  counter.nodes++;
  const code = r.u8();
  if (code === TypeCode.NULL) return null;
  if (code === 0xfe) {
    const key = r.u16();
    const t = cache?.get(key);
    if (!t) throw new PvaDecodeError(`introspection key ${key} not defined`);
    return t;
  }
  if (code === 0xfd) {
    const key = r.u16();
    const before = counter.nodes;
    const t = readType(r, cache, depth + 1, counter);
    if (!t) throw new PvaDecodeError("introspection define of the null type");
    if (cache) cache.set(key, t, counter.nodes - before);
    return t;
  }
  if (SCALARS.has(code)) return scalar(code);
  if ((code & 0xf8) !== 0x80 && (code & 0x18) === ARRAY && SCALARS.has(code & ~ARRAY)) {
    return { code, fieldCount: 1 };
  }
  switch (code) {
    case TypeCode.STRUCT:
    case TypeCode.UNION: {
      const id = r.string();
      const n = r.count(2);
      const list: Array<[string, TypeDesc]> = [];
      for (let i = 0; i < n; i++) {
        const name = r.string();
        const t = readType(r, cache, depth + 1, counter);
        if (!t) throw new PvaDecodeError(`member ${name} has the null type`);
        list.push([name, t]);
      }
      return compound(code, id, list);
    }
    case TypeCode.ANY:
      return { code, fieldCount: 1 };
    case TypeCode.STRUCT_ARRAY:
    case TypeCode.UNION_ARRAY: {
      const el = readType(r, cache, depth + 1, counter);
      const want = code === TypeCode.STRUCT_ARRAY ? TypeCode.STRUCT : TypeCode.UNION;
      if (!el || el.code !== want) throw new PvaDecodeError("bad element type of a compound array");
      return { code, element: el, fieldCount: 1 };
    }
    case TypeCode.ANY_ARRAY:
      return { code, fieldCount: 1 };
    default:
      throw new PvaDecodeError(`unknown type code 0x${code.toString(16)}`);
  }
}

/** Writes a full type description (always legal; TypeSendCache writes the short forms). */
export function encodeType(w: Writer, t: TypeDesc | null): void {
  if (!t) {
    w.u8(TypeCode.NULL);
    return;
  }
  w.u8(t.code);
  if (t.code === TypeCode.STRUCT || t.code === TypeCode.UNION) {
    w.string(t.id ?? "");
    const ms = t.members ?? [];
    w.size(ms.length);
    for (const m of ms) {
      w.string(m.name);
      encodeType(w, m.type);
    }
  } else if (t.code === TypeCode.STRUCT_ARRAY || t.code === TypeCode.UNION_ARRAY) {
    encodeType(w, t.element ?? null);
  }
}

/**
 * The send side of the introspection cache, one per connection: the first time a structure or
 * union goes out it is `0xFD key` + its description, afterwards `0xFE key` alone (as pvAccessCPP
 * servers send; pvxs and pvAccessCPP clients keep the table). Types are keyed by identity, so pass
 * only long-lived shared descriptions (the server's normative types); at most `maxKeys` are
 * remembered, later ones go out in full.
 */
export class TypeSendCache {
  private readonly keys = new Map<TypeDesc, number>();
  constructor(readonly maxKeys = 64) {}

  write(w: Writer, t: TypeDesc | null): void {
    if (!t || (t.code !== TypeCode.STRUCT && t.code !== TypeCode.UNION)) {
      encodeType(w, t);
      return;
    }
    const key = this.keys.get(t);
    if (key !== undefined) {
      w.u8(0xfe).u16(key);
      return;
    }
    if (this.keys.size < this.maxKeys) {
      const k = this.keys.size + 1;
      this.keys.set(t, k);
      w.u8(0xfd).u16(k);
    }
    encodeType(w, t);
  }

  get size(): number {
    return this.keys.size;
  }
}

/** Names of the scalar type codes (array bit cleared), as pvData prints them. */
export const SCALAR_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "boolean",
  32: "byte",
  33: "short",
  34: "int",
  35: "long",
  36: "ubyte",
  37: "ushort",
  38: "uint",
  39: "ulong",
  66: "float",
  67: "double",
  96: "string",
  130: "any",
};

/** A compact readable form, e.g. `structure epics:nt/NTScalar:1.0 {value: double, ...}`. */
export function describeType(t: TypeDesc | null): string {
  if (!t) return "null";
  if (t.code === TypeCode.STRUCT || t.code === TypeCode.UNION) {
    const kw = t.code === TypeCode.STRUCT ? "structure" : "union";
    const body = (t.members ?? []).map((m) => `${m.name}: ${describeType(m.type)}`).join(", ");
    return `${kw}${t.id ? ` ${t.id}` : ""} {${body}}`;
  }
  if (t.code === TypeCode.STRUCT_ARRAY || t.code === TypeCode.UNION_ARRAY) {
    return `${describeType(t.element ?? null)}[]`;
  }
  if (t.code === TypeCode.ANY_ARRAY) return "any[]";
  if (t.code === TypeCode.ANY) return "any";
  const base = SCALAR_TYPE_NAMES[t.code & ~ARRAY] ?? `0x${t.code.toString(16)}`;
  return (t.code & ARRAY) !== 0 ? `${base}[]` : base;
}
