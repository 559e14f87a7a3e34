/**
 * Issue 11 through our libca client (ffi/): a get right after a put returns the put value, a
 * monitor opened right after a put starts at it, and an empty array reads back empty — with PVs
 * whose write handler answers later, as a plugin's does. libca sends the put and the get on the
 * same circuit, back to back.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { caClient, type LibcaClient } from "../../ffi/index.ts";
import type { PvValue } from "../../src/pv/types.ts";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";

const savedEnv: Record<string, string | undefined> = {};
let h: CaHarness;
let ca: LibcaClient;

beforeAll(async () => {
  h = await startCaServer();
  for (const k of Object.keys(h.env)) savedEnv[k] = process.env[k];
  Object.assign(process.env, h.env);
  const later = async (_v: PvValue) => {
    await Bun.sleep(1);
  };
  const r = h.registry;
  r.add({ name: "O:DBL", kind: "double", writable: true, initial: 109 }, later);
  r.add({ name: "O:STR", kind: "string", writable: true, initial: "old" }, later);
  r.add({ name: "O:ENM", kind: "enum", writable: true, meta: { states: ["a", "b", "c"] } }, later);
  r.add({ name: "O:ARR", kind: "long", count: 8, writable: true }, later);
  r.add({ name: "O:EMPTY", kind: "double", count: 10 });
  ca = caClient();
});

afterAll(async () => {
  ca?.close();
  await ca?.whenClosed();
  await h?.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe("ffi client: read after write", () => {
  test("put then get at once returns the put value, every kind", async () => {
    const seen: unknown[] = [];
    for (const v of [1234567, 11, 22, 33]) {
      await ca.put("O:DBL", v);
      seen.push((await ca.get("O:DBL")).value);
    }
    for (const v of ["x", "yy"]) {
      await ca.put("O:STR", v);
      seen.push((await ca.get("O:STR")).value);
    }
    for (const v of [2, 0]) {
      await ca.put("O:ENM", v);
      seen.push((await ca.get("O:ENM")).value);
    }
    await ca.put("O:ARR", [4, 5, 6]);
    seen.push(Array.from((await ca.get("O:ARR")).value as Int32Array));
    expect(seen).toEqual([1234567, 11, 22, 33, "x", "yy", 2, 0, [4, 5, 6]]);
  });

  test("a monitor opened right after a put starts at the put value", async () => {
    await ca.put("O:DBL", 4242);
    const m = ca.monitor("O:DBL");
    const first = await m[Symbol.asyncIterator]().next();
    m.close();
    expect(first.value?.value).toBe(4242);
  });

  test("an empty array reads back empty (count 0 answered with 0 elements)", async () => {
    const r = await ca.get("O:EMPTY");
    expect(r.count).toBe(0);
    expect(Array.from(r.value as Float64Array)).toEqual([]);
  });
});
