/**
 * NameSet (src/common/name-set.ts), the search threads' byte-packed mirror of served names: it
 * must answer exactly as the Map of strings it replaced, through growth, removals, compaction and
 * names counted twice, and match names by the bytes each protocol puts on the wire.
 */
import { expect, test } from "bun:test";
import { NameSet } from "../../src/common/name-set.ts";

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const utf8 = (s: string) => new TextEncoder().encode(s);

/** Deterministic pseudo-random numbers (mulberry32), so a failure is reproducible. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("answers as a counted Map of strings through 60,000 random adds and removes", () => {
  const rand = rng(11);
  const set = new NameSet("utf8");
  const model = new Map<string, number>();
  // A pool larger than what is live at once: names come back after being removed (tombstones,
  // compaction), and some are added twice (a PV and an RPC of one name).
  const pool = Array.from({ length: 6000 }, (_, i) => `BENCH:PLUGIN:PV:${i}${"x".repeat(i % 40)}`);
  for (let step = 0; step < 60_000; step++) {
    const name = pool[Math.floor(rand() * pool.length)] as string;
    const n = model.get(name) ?? 0;
    // Adds win early (growth), removes late (compaction).
    if (rand() < (step < 30_000 ? 0.7 : 0.3)) {
      set.add(name);
      model.set(name, n + 1);
    } else {
      set.remove(name);
      if (n <= 1) model.delete(name);
      else model.set(name, n - 1);
    }
    if (step % 5000 === 0 || step === 59_999) {
      expect(set.size).toBe(model.size);
      for (const p of pool) {
        const bytes = utf8(p);
        expect([p, set.hasName(p)]).toEqual([p, model.has(p)]);
        expect([p, set.has(bytes, 0, bytes.length)]).toEqual([p, model.has(p)]);
      }
    }
  }
});

test("names left after a compaction are kept; everything removed leaves an empty set that fills again", () => {
  const set = new NameSet("latin1");
  const names = Array.from({ length: 11_000 }, (_, i) => `A:${i}`);
  for (const n of names) set.add(n);
  expect(set.size).toBe(11_000);
  // Three of four removed: their records are over half the buffer, so it is compacted; the
  // names left must survive the move.
  for (const [i, n] of names.entries()) if (i % 4 !== 0) set.remove(n);
  expect(set.size).toBe(2750);
  expect(names.every((n, i) => set.hasName(n) === (i % 4 === 0))).toBe(true);
  for (const [i, n] of names.entries()) if (i % 4 === 0) set.remove(n);
  expect(set.size).toBe(0);
  expect(names.some((n) => set.hasName(n))).toBe(false);
  // Removing what is not there changes nothing.
  set.remove("A:1");
  expect(set.size).toBe(0);
  set.add("A:1");
  expect([set.size, set.hasName("A:1"), set.hasName("A:2")]).toEqual([1, true, false]);
});

test("a name in the middle of a datagram is found by its byte range", () => {
  const set = new NameSet("latin1");
  set.add("SR:C01:BPM");
  const buf = latin1("..SR:C01:BPM..SR:C01:BPMX");
  expect(set.has(buf, 2, 12)).toBe(true);
  // A prefix, an extension, and an empty range are other names.
  expect(set.has(buf, 2, 11)).toBe(false);
  expect(set.has(buf, 14, 25)).toBe(false);
  expect(set.has(buf, 2, 2)).toBe(false);
});

test("CA (latin1): a char above 0xFF never matches; 0x80-0xFF match their single byte", () => {
  const set = new NameSet("latin1");
  set.add("T:\u00e9");
  set.add("T:\u20ac");
  expect(set.size).toBe(1);
  expect(set.has(latin1("T:\u00e9"), 0, 3)).toBe(true);
  // The UTF-8 bytes of é are another name on a CA wire.
  expect(set.has(utf8("T:\u00e9"), 0, 4)).toBe(false);
  expect(set.hasName("T:\u20ac")).toBe(false);
  // Its removal is as harmless as its add.
  set.remove("T:\u20ac");
  expect(set.size).toBe(1);
});

test("PVA (utf8): names match their UTF-8 bytes; a lone surrogate is never kept", () => {
  const set = new NameSet("utf8");
  set.add("T:\u00e9\u20ac");
  set.add("T:\ud800");
  expect(set.size).toBe(1);
  const b = utf8("T:\u00e9\u20ac");
  expect(set.has(b, 0, b.length)).toBe(true);
  expect(set.hasName("T:\u00e9\u20ac")).toBe(true);
  // What a decoder makes of the surrogate's bytes (U+FFFD) is not that name.
  expect(set.hasName("T:\ufffd")).toBe(false);
});

test("long names (beyond the scratch buffer) and a name counted twice", () => {
  const set = new NameSet("utf8");
  const long = `L:${"\u20ac".repeat(5000)}`;
  set.add(long);
  set.add(long);
  expect(set.size).toBe(1);
  set.remove(long);
  expect(set.hasName(long)).toBe(true);
  set.remove(long);
  expect(set.hasName(long)).toBe(false);
  expect(set.size).toBe(0);
});
