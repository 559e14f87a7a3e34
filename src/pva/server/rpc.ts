/**
 * The RPC hook: a registry of handlers by channel name. A handler receives the decoded argument
 * (for `pvcall NAME a=1` an NTURI whose `query` holds the strings) and returns a result structure;
 * throwing answers with an ERROR status carrying the message. Plugin integration (a job's run as
 * RPC on one of its PVs) registers here; the server consults it for every RPC on a channel.
 */
import { scalar, scalarArray, struct, TypeCode, type TypeDesc } from "../codec/types.ts";
import type { StructValue } from "../codec/values.ts";

export interface RpcRequest {
  /** Channel name the RPC was made on. */
  name: string;
  /** The argument as sent (type null when the client sent none). */
  type: TypeDesc | null;
  value: unknown;
  /** NTURI query (or a plain structure's top-level scalars) as strings, for convenience. */
  args: Record<string, string>;
  user: string;
  host: string;
  peer: string;
}

/** A result: a type and value, or a plain object whose type is inferred (see inferType). */
export type RpcResult = { type: TypeDesc; value: unknown } | StructValue;

export type RpcHandler = (req: RpcRequest) => RpcResult | Promise<RpcResult>;

export class RpcRegistry {
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly listeners = new Set<(name: string, added: boolean) => void>();

  /** Registers `handler` for channel `name`; returns the function that removes it. */
  register(name: string, handler: RpcHandler): () => void {
    this.handlers.set(name, handler);
    for (const l of this.listeners) l(name, true);
    return () => {
      if (this.handlers.get(name) !== handler) return;
      this.handlers.delete(name);
      for (const l of this.listeners) l(name, false);
    };
  }

  get(name: string): RpcHandler | undefined {
    return this.handlers.get(name);
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  names(): IterableIterator<string> {
    return this.handlers.keys();
  }

  /** Told when a handler is added or removed (the server drops RPC-only channels). */
  onChange(cb: (name: string, added: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}

/** Arguments as strings: the NTURI `query`, else the argument's own top-level scalars. */
export function rpcArgs(type: TypeDesc | null, value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!type || type.code !== TypeCode.STRUCT) return out;
  let v = (value ?? {}) as StructValue;
  if (type.id?.startsWith("epics:nt/NTURI:") && v.query && typeof v.query === "object") {
    v = v.query as StructValue;
  }
  for (const [k, x] of Object.entries(v)) {
    if (x === null || typeof x === "object") continue;
    out[k] = String(x);
  }
  return out;
}

/**
 * Infers a pvData type for a plain value: numbers are doubles, booleans booleans, strings strings,
 * arrays of numbers/strings/booleans the matching arrays, objects structures. Anything else (null,
 * functions, nested arrays of objects) becomes a string of its JSON form.
 */
export function inferType(v: unknown, depth = 0): TypeDesc {
  if (typeof v === "number" || typeof v === "bigint") return scalar(TypeCode.FLOAT64);
  if (typeof v === "boolean") return scalar(TypeCode.BOOLEAN);
  if (typeof v === "string") return scalar(TypeCode.STRING);
  if (ArrayBuffer.isView(v)) return scalarArray(TypeCode.FLOAT64);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "number")) return scalarArray(TypeCode.FLOAT64);
    if (v.every((x) => typeof x === "boolean")) return scalarArray(TypeCode.BOOLEAN);
    return scalarArray(TypeCode.STRING);
  }
  if (v && typeof v === "object" && depth < 16) {
    return struct(
      "",
      Object.entries(v as StructValue).map(([k, x]) => [k, inferType(x, depth + 1)]),
    );
  }
  return scalar(TypeCode.STRING);
}

/** Converts a plain value to what encodeValue expects for inferType's type. */
export function inferValue(v: unknown, depth = 0): unknown {
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) {
    if (v.every((x) => typeof x === "number" || typeof x === "boolean")) return v;
    return v.map((x) => (typeof x === "string" ? x : JSON.stringify(x)));
  }
  if (v && typeof v === "object" && !ArrayBuffer.isView(v) && depth < 16) {
    return Object.fromEntries(
      Object.entries(v as StructValue).map(([k, x]) => [k, inferValue(x, depth + 1)]),
    );
  }
  if (v === null || v === undefined || typeof v === "function" || typeof v === "symbol") {
    return v === undefined ? "" : (JSON.stringify(v) ?? "");
  }
  return v;
}

/** Normalises a handler's result to a type and value. */
export function resultTypeValue(r: RpcResult): { type: TypeDesc; value: unknown } {
  const tv = r as { type?: unknown; value?: unknown };
  const t = tv.type as TypeDesc | undefined;
  if (t && typeof t === "object" && typeof t.code === "number" && "fieldCount" in t) {
    return { type: t, value: tv.value };
  }
  const value = inferValue(r);
  return { type: inferType(value), value };
}
