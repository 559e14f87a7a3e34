import { expect, test } from "bun:test";
import { hashName, NameIndex } from "../../../src/ca/server/names.ts";

const bytesOf = (s: string) => new Uint8Array([...s].map((ch) => ch.charCodeAt(0)));

// CREATE_CHAN and searches match names on their bytes (no string per requested name).
test("NameIndex: set, delete and byte lookups, including names whose hashes collide", () => {
  const t = new NameIndex<number>();
  const get = (s: string) => {
    const b = bytesOf(`xx${s}\0yy`); // the name sits inside a larger message
    return t.get(b, 2, 2 + s.length);
  };
  t.set("A:B", 1);
  t.set("A:B", 2); // replaces
  expect(t.size).toBe(1);
  expect(get("A:B")).toBe(2);
  expect(get("A:C")).toBeUndefined();
  expect(get("A:")).toBeUndefined();
  expect(get("A:BC")).toBeUndefined();
  // Two different names with one hash: both found, each removable alone.
  const seen = new Map<number, string>();
  let pair: [string, string] | null = null;
  for (let i = 0; pair === null && i < 2_000_000; i++) {
    const n = `PV:${i}`;
    const h = hashName(n);
    const other = seen.get(h);
    if (other !== undefined) pair = [other, n];
    else seen.set(h, n);
  }
  expect(pair).not.toBeNull();
  const [x, y] = pair as [string, string];
  expect(hashName(x)).toBe(hashName(y));
  t.set(x, 10);
  expect(get(x)).toBe(10);
  expect(get(y)).toBeUndefined();
  t.set(y, 20);
  t.set(y, 21); // replaces inside a shared bucket
  expect([get(x), get(y), t.size]).toEqual([10, 21, 3]);
  t.delete(x);
  expect(get(x)).toBeUndefined();
  expect(get(y)).toBe(21);
  t.delete(x); // absent: no-op
  expect(t.size).toBe(2);
  t.delete(y);
  t.delete("A:B");
  expect(t.size).toBe(0);
  expect(get(y) ?? get("A:B")).toBeUndefined();
  // Latin-1 bytes match the string's char codes; a char beyond 0xFF can never match bytes.
  t.set("T:\u00e9", 1);
  expect(t.has(new Uint8Array([0x54, 0x3a, 0xe9]), 0, 3)).toBe(true);
  t.set("T:\u20ac", 2);
  expect(t.has(new Uint8Array([0x54, 0x3a, 0xac]), 0, 3)).toBe(false);
});
