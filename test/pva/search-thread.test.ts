/**
 * The PVA search thread (src/pva/server/search-thread.ts, pva-search-worker.ts): UDP searches are
 * answered by a Worker from its mirror of the served names. These tests pin what that mirror must
 * guarantee: a name served when `registry.add()` / `rpc.register()` returned is answered at once,
 * a removed one is not, a name that is both a PV and an RPC stays while either remains, and a
 * thread that dies is replaced on the same port with the current names.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import type { PvRegistry } from "../../src/pv/registry.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { udpSearch } from "../helpers/pva-client.ts";
import { startPva } from "../helpers/pva-harness.ts";

let registry: PvRegistry;
let server: PvaServer;

beforeEach(async () => {
  ({ registry, server } = await startPva());
});
afterEach(async () => {
  await server.stop();
});

const found = async (name: string) => (await udpSearch(server.udpPort, [name])).length === 1;

test("a PV added just before the search is found; once removed it is not", async () => {
  for (let i = 0; i < 5; i++) {
    registry.add({ name: `ST:ADD${i}`, kind: "double" });
    expect(await found(`ST:ADD${i}`)).toBe(true);
  }
  registry.remove("ST:ADD0");
  expect(await found("ST:ADD0")).toBe(false);
  expect(await found("ST:ADD1")).toBe(true);
}, 20_000);

test("RPC names are searched too; a name that is both stays while either remains", async () => {
  const off = server.rpc.register("ST:CALL", () => ({ ok: true }));
  expect(await found("ST:CALL")).toBe(true);
  registry.add({ name: "ST:CALL", kind: "long" });
  // A second handler under the same name replaces the first: still one server of the name.
  const off2 = server.rpc.register("ST:CALL", () => ({ ok: false }));
  off();
  off2();
  expect(await found("ST:CALL")).toBe(true);
  registry.remove("ST:CALL");
  expect(await found("ST:CALL")).toBe(false);
});

test("counters come from the thread through shared memory", async () => {
  registry.add({ name: "ST:C", kind: "double" });
  const before = server.stats();
  await found("ST:C");
  await udpSearch(server.udpPort, ["ST:NOPE"]);
  const after = server.stats();
  expect(after.searchDatagrams - before.searchDatagrams).toBe(2);
  expect(after.searchReplies - before.searchReplies).toBe(1);
});

test("a crashed search thread is replaced on the same port with the current names", async () => {
  registry.add({ name: "ST:OLD", kind: "double" });
  const port = server.udpPort;
  server.crashSearchThreadForTest();
  registry.add({ name: "ST:NEW", kind: "double" });
  // The replacement binds asynchronously: search until it answers (bounded).
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) ok = await found("ST:NEW");
  expect(ok).toBe(true);
  expect(server.udpPort).toBe(port);
  expect(await found("ST:OLD")).toBe(true);
  // Counters live on across the restart (shared memory owned by the server).
  expect(server.stats().searchReplies).toBeGreaterThanOrEqual(2);
}, 30_000);
