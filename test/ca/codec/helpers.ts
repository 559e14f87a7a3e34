/** Shared helpers for the codec tests: hex conversion and a deterministic PRNG. */

/** Lower-case hex of bytes, no separators. */
export function hex(u: Uint8Array): string {
  let s = "";
  for (const b of u) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Bytes from hex written with optional spaces/newlines (for readable golden values). */
export function bytes(h: string): Uint8Array {
  const t = h.replace(/\s+/g, "");
  if (t.length % 2 !== 0) throw new Error(`odd hex length: ${t}`);
  const out = new Uint8Array(t.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(t.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Normalises readable hex (spaces removed, lower case) for comparisons with hex(). */
export function h(s: string): string {
  return s.replace(/\s+/g, "").toLowerCase();
}

/** Deterministic PRNG (mulberry32) so property tests are reproducible from their seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Concatenates byte arrays (the codec's own helper, under the name the tests use). */
export { concatMessages as concat } from "../../../src/ca/codec/messages.ts";
