/**
 * What makes a PV specification valid: the size limits EPICS tools expect (names, strings, enum
 * states, units) and the checks `new Pv(spec)` and `Pv.setMeta` run.
 */
import type { PvKind, PvMeta, PvSpec, PvValue } from "./types.ts";

/** Longest string value in bytes (EPICS MAX_STRING_SIZE 40 minus the NUL). */
export const MAX_STRING_BYTES = 39;
/** Most enum states a PV may have (mbbi/mbbo). */
export const MAX_ENUM_STATES = 16;
/** Longest enum state string in bytes (MAX_ENUM_STRING_SIZE 26 minus the NUL). */
export const MAX_ENUM_STRING_BYTES = 25;
/** Longest units string in bytes (MAX_UNITS_SIZE 8 minus the NUL). */
export const MAX_UNITS_BYTES = 7;

/** Thrown for an invalid PV specification or value; the message says what was expected. */
export class PvSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PvSpecError";
  }
}

const encoder = new TextEncoder();

/** The value a PV holds before anything is posted: 0, "" or an empty array. */
export function defaultValue(kind: PvKind, count: number): PvValue {
  if (kind === "string") return "";
  if (count === 1) return 0;
  if (kind === "double") return new Float64Array(0);
  if (kind === "long") return new Int32Array(0);
  return new Uint8Array(0);
}

const NAME_RE = /^[\x21-\x7e]+$/;
/** Longest PV name in bytes (libca's limit is 1008 including the NUL). */
export const MAX_PV_NAME_BYTES = 1007;
/** Largest element count a PV may declare (256 Mi elements: 2 GiB of doubles). */
export const MAX_PV_COUNT = 1 << 28;

/** Throws PvSpecError unless `spec` describes a PV we can serve. */
export function validateSpec(spec: PvSpec): void {
  if (typeof spec.name !== "string" || !NAME_RE.test(spec.name)) {
    throw new PvSpecError(
      `invalid PV name ${JSON.stringify(spec.name)}: printable ASCII without spaces expected`,
    );
  }
  if (spec.name.length > MAX_PV_NAME_BYTES) {
    throw new PvSpecError(`PV name too long (${spec.name.length} > ${MAX_PV_NAME_BYTES} bytes)`);
  }
  const kinds: PvKind[] = ["double", "long", "string", "enum", "char"];
  if (!kinds.includes(spec.kind)) {
    throw new PvSpecError(
      `${spec.name}: kind must be one of ${kinds.join(", ")}, got ${String(spec.kind)}`,
    );
  }
  const count = spec.count ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PV_COUNT) {
    throw new PvSpecError(
      `${spec.name}: count must be an integer 1..${MAX_PV_COUNT}, got ${count}`,
    );
  }
  if (count > 1 && (spec.kind === "string" || spec.kind === "enum")) {
    throw new PvSpecError(`${spec.name}: ${spec.kind} PVs are scalar (count must be 1)`);
  }
  validateMeta(spec.name, spec.kind, spec.meta ?? {});
  const asg = spec.asg;
  if (asg !== undefined && (typeof asg !== "string" || !/^[\x21-\x7e]{1,128}$/.test(asg))) {
    throw new PvSpecError(
      `${spec.name}: access security group must be 1..128 printable characters, got ${JSON.stringify(asg)}`,
    );
  }
}

/** Throws PvSpecError unless `m` is valid metadata for a PV of `kind`. */
export function validateMeta(name: string, kind: PvKind, m: PvMeta): void {
  if (m.units !== undefined && encoder.encode(m.units).length > MAX_UNITS_BYTES) {
    throw new PvSpecError(`${name}: units "${m.units}" longer than ${MAX_UNITS_BYTES} bytes`);
  }
  if (
    m.precision !== undefined &&
    (!Number.isInteger(m.precision) || m.precision < 0 || m.precision > 17)
  ) {
    throw new PvSpecError(`${name}: precision must be an integer 0..17, got ${m.precision}`);
  }
  if (m.states !== undefined) {
    if (kind !== "enum") throw new PvSpecError(`${name}: states are only valid for enum PVs`);
    if (m.states.length > MAX_ENUM_STATES) {
      throw new PvSpecError(
        `${name}: at most ${MAX_ENUM_STATES} enum states, got ${m.states.length}`,
      );
    }
    for (const s of m.states) {
      if (encoder.encode(s).length > MAX_ENUM_STRING_BYTES) {
        throw new PvSpecError(
          `${name}: enum state "${s}" longer than ${MAX_ENUM_STRING_BYTES} bytes`,
        );
      }
    }
  }
  for (const k of [
    "displayLow",
    "displayHigh",
    "controlLow",
    "controlHigh",
    "mdel",
    "adel",
  ] as const) {
    const v = m[k];
    if (v !== undefined && (typeof v !== "number" || Number.isNaN(v))) {
      throw new PvSpecError(`${name}: ${k} must be a number, got ${String(v)}`);
    }
  }
}
