/**
 * Encoding a value to put for a channel of a given native type: checked and converted before
 * anything reaches libca, so a bad value fails with a clear CaBadTypeError.
 */
import { DBR } from "./dbr.ts";
import { CaBadTypeError } from "./errors.ts";

const encoder = new TextEncoder();

/** A value to put, encoded for the wire: DBR type, element count and host-order bytes. */
export interface Encoded {
  type: number;
  count: number;
  data: Uint8Array;
}

// Stricter than the PV model's toNumber (src/pv/pv.ts) on purpose: the server must read "" as 0
// like rsrv, but a client putting "" almost always holds a typo, so it is refused before sending.
function toNumber(v: unknown, name: string): number {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string") {
    const t = v.trim();
    const n = t === "" ? Number.NaN : Number(t);
    if (!Number.isNaN(n) || t.toLowerCase() === "nan") return n;
  }
  const shown =
    typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : v === null ? "null" : typeof v;
  throw new CaBadTypeError(`put ${name}: expected a number, got ${shown}`);
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

/**
 * Encodes `value` for a channel of native type `native` holding at most `max` elements: numbers
 * go as DBR_DOUBLE (float/double) or DBR_LONG (short/long), enum as an index or a state name,
 * char arrays take a string (UTF-8 plus NUL, the EPICS long-string idiom). Throws CaBadTypeError
 * before anything is sent when the value does not fit.
 */
export function encodePut(native: number, max: number, value: unknown, name: string): Encoded {
  const tooMany = (n: number) =>
    new CaBadTypeError(`put ${name}: ${n} elements but the channel holds at most ${max}`);
  if (native === DBR.STRING) {
    const items = isArrayLike(value) ? Array.from(value) : [value];
    if (items.length > max) throw tooMany(items.length);
    const data = new Uint8Array(40 * Math.max(items.length, 1));
    items.forEach((it, i) => {
      if ((typeof it === "object" && it !== null) || typeof it === "function") {
        throw new CaBadTypeError(`put ${name}: expected a string, got ${typeof it}`);
      }
      data.set(encoder.encode(String(it)).subarray(0, 39), i * 40);
    });
    return { type: DBR.STRING, count: Math.max(items.length, 1), data };
  }
  if (native === DBR.ENUM && typeof value === "string" && Number.isNaN(Number(value))) {
    // A state name: the server maps it to its index (like `caput pv Open`).
    const b = encoder.encode(value);
    if (b.length > 39) {
      throw new CaBadTypeError(`put ${name}: enum state name longer than 39 bytes`);
    }
    const data = new Uint8Array(40);
    data.set(b);
    return { type: DBR.STRING, count: 1, data };
  }
  if (native === DBR.CHAR && typeof value === "string") {
    const b = encoder.encode(value);
    if (b.length > max) throw tooMany(b.length);
    // Append the NUL when it fits, like caput -S.
    const n = Math.min(b.length + 1, max);
    const data = new Uint8Array(n);
    data.set(b.subarray(0, Math.min(b.length, n)));
    return { type: DBR.CHAR, count: n, data };
  }
  const items: ArrayLike<unknown> = isArrayLike(value) ? value : [value];
  if (items.length > max) throw tooMany(items.length);
  if (items.length === 0) throw new CaBadTypeError(`put ${name}: empty array`);
  const n = items.length;
  if (native === DBR.FLOAT || native === DBR.DOUBLE) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = toNumber(items[i], name);
    return { type: DBR.DOUBLE, count: n, data: new Uint8Array(out.buffer) };
  }
  if (native === DBR.ENUM) {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const x = toNumber(items[i], name);
      if (!Number.isInteger(x) || x < 0 || x > 0xffff) {
        throw new CaBadTypeError(`put ${name}: enum index must be an integer 0..65535, got ${x}`);
      }
      out[i] = x;
    }
    return { type: DBR.ENUM, count: n, data: new Uint8Array(out.buffer) };
  }
  const finite = (i: number) => {
    const x = toNumber(items[i], name);
    if (!Number.isFinite(x)) throw new CaBadTypeError(`put ${name}: ${x} is not a finite number`);
    return x;
  };
  if (native === DBR.CHAR) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = finite(i);
    return { type: DBR.CHAR, count: n, data: out };
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = finite(i);
  return { type: DBR.LONG, count: n, data: new Uint8Array(out.buffer) };
}

/** One libca context bound to the calling thread. Create it through caClient(). */
