/**
 * rsrv's number ↔ text rules for DBR conversions: how a double prints as DBR_STRING, how a
 * string parses as a number, the float saturation, enum state strings and the class name served
 * for DBR_CLASS_NAME. Pure functions; see docs/ca-protocol-facts.md "Conversions".
 */
import type { PvKind } from "../../pv/types.ts";
import { MAX_ENUM_STATES } from "./dbr-layout.ts";

const FLT_MAX = 3.4028234663852886e38;
const FLT_MIN = 1.1754943508222875e-38;

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
export function stateCount(states: readonly string[] | undefined): number {
  if (states === undefined) return 0;
  let n = Math.min(states.length, MAX_ENUM_STATES);
  while (n > 0 && (states[n - 1] ?? "") === "") n--;
  return n;
}
