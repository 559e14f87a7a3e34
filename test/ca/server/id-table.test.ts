import { describe, expect, test } from "bun:test";
import { IdTable } from "../../../src/ca/server/id-table.ts";

// A seeded generator, so a failure reproduces.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function same(t: IdTable<{ id: number }>, m: Map<number, { id: number }>, ids: number[]): void {
  expect(t.size).toBe(m.size);
  for (const id of ids) expect(t.get(id)).toBe(m.get(id));
}

describe("IdTable (a circuit's subscriptions by id)", () => {
  test("agrees with a Map under random adds, replacements and deletes of u32 ids", () => {
    const next = rng(11);
    // A small id pool forces collisions, replacements and long probe runs; u32 ids near 2^32 too.
    const pool = Array.from({ length: 300 }, (_, i) => (i < 150 ? i * 7 : 0xffffffff - i * 65536));
    const t = new IdTable<{ id: number }>();
    const m = new Map<number, { id: number }>();
    for (let step = 0; step < 40_000; step++) {
      const id = pool[next() % pool.length] as number;
      const op = next() % 3;
      if (op === 0) {
        expect(t.delete(id)).toBe(m.delete(id));
      } else {
        const v = { id };
        t.set(id, v);
        m.set(id, v);
      }
      if (step % 997 === 0) same(t, m, pool);
    }
    same(t, m, pool);
  });

  test("churn of 500 sequential ids, then growth to 20,000 and back to none", () => {
    const t = new IdTable<{ id: number }>();
    const m = new Map<number, { id: number }>();
    const ids = Array.from({ length: 20_000 }, (_, i) => i + 1);
    for (let round = 0; round < 20; round++) {
      const n = round === 10 ? 20_000 : 500;
      for (const id of ids.slice(0, n)) {
        const v = { id };
        t.set(id, v);
        m.set(id, v);
      }
      same(t, m, ids.slice(0, n + 10));
      for (const id of ids.slice(0, n)) {
        expect(t.delete(id)).toBe(true);
        m.delete(id);
      }
      expect(t.size).toBe(0);
      expect(t.get(1)).toBeUndefined();
    }
    t.set(7, { id: 7 });
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(7)).toBeUndefined();
  });
});
