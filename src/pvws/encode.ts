/**
 * PV Web Socket (PVWS) update messages, built from a `Pv` of the protocol-neutral model.
 *
 * The protocol is the one of ORNL's PVWS service (used by the Display Builder web runtime, dbwr):
 * one JSON object per WebSocket text frame, `{"type":"update","pv":NAME,…}`. The first update of a
 * subscription carries the metadata (`vtype`, `units`, `description`, `precision`, `min`/`max`,
 * `warn_low`/`warn_high`, `alarm_low`/`alarm_high`, enum `labels`) and the `severity`; later ones
 * only what changed: the value, `seconds`/`nanos`, and `severity` / `readonly` when they changed.
 * Arrays travel as base64 of their little-endian bytes: `b64dbl` (float64), `b64int` (int32),
 * `b64byt` (bytes). Clients (pvws.js) merge each update into the last known one.
 *
 * Two additions, compatible because clients ignore unknown fields and merge the rest:
 * metadata is sent again after it changed (DBE_PROPERTY), and a PV that is not (or no longer)
 * served gets `{"severity":"UNDEFINED","connected":false}` with no value; every full update says
 * `"connected":true`, so a merging client sees the PV come back.
 */
import { endianness } from "node:os";
import type { Pv } from "../pv/pv.ts";

/** Severity names as the VType library spells them (AlarmSeverity.name()). */
export const SEVERITY_NAMES = ["NONE", "MINOR", "MAJOR", "INVALID"] as const;

/** What one client has already been told about one PV, so updates carry only changes. */
export interface SentState {
  /** Pv.metaGeneration last sent, or -1 before the first (full) update. */
  metaGeneration: number;
  severity: number;
  readonly: boolean | undefined;
}

/** A fresh state: the next update is a full one. */
export function freshState(): SentState {
  return { metaGeneration: -1, severity: -1, readonly: undefined };
}

/** The VType class name PVWS puts in `vtype`, by kind and element count. */
export function vtypeOf(pv: Pv): string {
  if (pv.kind === "string") return "VString";
  if (pv.kind === "enum") return "VEnum";
  const array = pv.count > 1;
  if (pv.kind === "double") return array ? "VDoubleArray" : "VDouble";
  if (pv.kind === "long") return array ? "VIntArray" : "VInt";
  return array ? "VByteArray" : "VByte";
}

const LITTLE_ENDIAN = endianness() === "LE";

/** Base64 of a typed array's elements as little-endian bytes (what PVWS sends and pvws.js decodes). */
export function base64Le(a: Float64Array | Int32Array | Uint8Array): string {
  if (LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1) {
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64");
  }
  // Big-endian hosts: write each element little-endian (never taken on x86/arm64 Linux).
  const out = new DataView(new ArrayBuffer(a.byteLength));
  for (let i = 0; i < a.length; i++) {
    if (a instanceof Float64Array) out.setFloat64(i * 8, a[i] ?? 0, true);
    else out.setInt32(i * 4, a[i] ?? 0, true);
  }
  return Buffer.from(out.buffer).toString("base64");
}

/** The metadata fields of a full update (only those the PV defines; `vtype` always). */
function metadata(pv: Pv, out: Record<string, unknown>): void {
  out.vtype = vtypeOf(pv);
  const m = pv.meta;
  if (pv.kind === "enum") {
    out.labels = [...(m.states ?? [])];
    return;
  }
  if (pv.kind === "string") return;
  out.units = m.units ?? "";
  out.description = m.description ?? "";
  if (m.precision !== undefined) out.precision = m.precision;
  if (m.displayLow !== undefined) out.min = m.displayLow;
  if (m.displayHigh !== undefined) out.max = m.displayHigh;
  const a = m.alarm;
  if (a?.low !== undefined) out.warn_low = a.low;
  if (a?.high !== undefined) out.warn_high = a.high;
  if (a?.lolo !== undefined) out.alarm_low = a.lolo;
  if (a?.hihi !== undefined) out.alarm_high = a.hihi;
}

/** The value fields: `value` for numbers, `text` for strings, enums both, `b64*` for arrays. */
function valueFields(pv: Pv, out: Record<string, unknown>): void {
  const v = pv.value;
  if (typeof v === "string") {
    out.text = v;
    return;
  }
  if (typeof v === "number") {
    if (pv.kind === "enum") {
      out.value = v;
      out.text = pv.meta.states?.[v] ?? String(v);
      return;
    }
    // JSON has no NaN/Infinity; PVWS sends the string "NaN" for any non-finite double.
    out.value = Number.isFinite(v) ? v : "NaN";
    return;
  }
  if (v instanceof Float64Array) out.b64dbl = base64Le(v);
  else if (v instanceof Int32Array) out.b64int = base64Le(v);
  else out.b64byt = base64Le(v);
}

/**
 * The update message for `pv` given what the client was already sent (`sent` is updated).
 * `full` forces the metadata (first update, after a reconnect, or after a metadata change).
 */
export function encodeUpdate(name: string, pv: Pv, sent: SentState, readonly: boolean): string {
  const out: Record<string, unknown> = { type: "update", pv: name };
  const full = sent.metaGeneration !== pv.metaGeneration;
  if (full) {
    out.connected = true;
    metadata(pv, out);
    sent.metaGeneration = pv.metaGeneration;
  }
  const state = pv.state;
  if (full || sent.severity !== state.severity) {
    out.severity = SEVERITY_NAMES[state.severity] ?? "INVALID";
    sent.severity = state.severity;
  }
  if (sent.readonly !== readonly) {
    out.readonly = readonly;
    sent.readonly = readonly;
  }
  out.seconds = state.timestamp.sec;
  out.nanos = state.timestamp.nsec;
  valueFields(pv, out);
  return JSON.stringify(out);
}

/**
 * The common update: nothing but value and timestamp changed since what the client was sent.
 * The same for every client subscribed under the same name, so the hub caches it per update.
 */
export function encodeChange(name: string, pv: Pv): string {
  const out: Record<string, unknown> = { type: "update", pv: name };
  const state = pv.state;
  out.seconds = state.timestamp.sec;
  out.nanos = state.timestamp.nsec;
  valueFields(pv, out);
  return JSON.stringify(out);
}

/** Whether the next update for this client is a plain change ({@link encodeChange}). */
export function isPlainChange(pv: Pv, sent: SentState, readonly: boolean): boolean {
  return (
    sent.metaGeneration === pv.metaGeneration &&
    sent.severity === pv.state.severity &&
    sent.readonly === readonly
  );
}

/** The update telling a client that `name` is not served (never was, or was removed). */
export function encodeDisconnected(name: string, sent: SentState): string {
  // The next update after this one is a full one (metadata again, "connected": true).
  sent.metaGeneration = -1;
  sent.severity = -1;
  sent.readonly = true;
  return JSON.stringify({
    type: "update",
    pv: name,
    connected: false,
    severity: "UNDEFINED",
    readonly: true,
  });
}
