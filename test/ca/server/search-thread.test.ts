/**
 * The CA server answers searches on a thread of its own (src/ca/server/search-worker.ts) from a
 * mirror of the registry's names. These tests pin what that must not change: a name added is
 * answered by the very next search and a removed one is not, replies of a burst keep each
 * datagram's VERSION echo in front of its own replies, and a dead search thread is replaced.
 */
import { afterEach, expect, test } from "bun:test";
import dgram from "node:dgram";
import { CMD } from "../../../src/ca/codec/constants.ts";
import { parseDatagram } from "../../../src/ca/codec/udp.ts";
import { type CaHarness, startCaServer } from "../../helpers/ca-harness.ts";
import { searchDatagram } from "../../helpers/ca-raw.ts";

let h: CaHarness | null = null;
let sock: dgram.Socket | null = null;

afterEach(async () => {
  sock?.close();
  sock = null;
  await h?.stop();
  h = null;
});

/** A loopback UDP client collecting every message of every reply datagram, in order. */
async function client(): Promise<{
  send(d: Uint8Array): void;
  /** [command, p1 or p2] of each message received so far: VERSION → seq, SEARCH → search id. */
  got: Array<[number, number]>;
  until(n: number, timeoutMs?: number): Promise<void>;
}> {
  const s = dgram.createSocket("udp4");
  sock = s;
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  // While no search thread runs the port is closed: the kernel's "port unreachable" comes back
  // as an error event on Linux, which must not end the client.
  s.on("error", () => {});
  const got: Array<[number, number]> = [];
  let wake: () => void = () => {};
  s.on("message", (m) => {
    for (const { header } of parseDatagram(new Uint8Array(m)).messages)
      got.push([header.command, header.command === CMD.VERSION ? header.p1 : header.p2]);
    wake();
  });
  return {
    send: (d) => s.send(d, h?.port ?? 0, "127.0.0.1"),
    got,
    async until(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (got.length < n && Date.now() < deadline)
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
    },
  };
}

test("a name added is answered by the next search, a removed one no longer", async () => {
  h = await startCaServer();
  h.registry.add({ name: "ST:OLD", kind: "double" });
  const c = await client();
  // No await between add() and the search: the thread must see the add before answering.
  h.registry.add({ name: "ST:NEW", kind: "double" });
  c.send(searchDatagram(1, [["ST:NEW", 7]]));
  await c.until(2);
  expect(c.got).toEqual([
    [CMD.VERSION, 1],
    [CMD.SEARCH, 7],
  ]);
  h.registry.remove("ST:NEW");
  c.send(
    searchDatagram(2, [
      ["ST:NEW", 8],
      ["ST:OLD", 9],
    ]),
  );
  await c.until(4);
  expect(c.got.slice(2)).toEqual([
    [CMD.VERSION, 2],
    [CMD.SEARCH, 9],
  ]);
});

test("replies to a burst of datagrams keep each datagram's VERSION echo before its replies", async () => {
  h = await startCaServer();
  const names: Array<[string, number]> = [];
  for (let i = 0; i < 90; i++) {
    h.registry.add({ name: `ST:B${i}`, kind: "long" });
    names.push([`ST:B${i}`, 1000 + i]);
  }
  const c = await client();
  // 3 datagrams of 30 names sent back to back (replies may share datagrams, loopback).
  for (let d = 0; d < 3; d++) c.send(searchDatagram(100 + d, names.slice(d * 30, d * 30 + 30)));
  await c.until(93);
  const expected: Array<[number, number]> = [];
  for (let d = 0; d < 3; d++) {
    expected.push([CMD.VERSION, 100 + d]);
    for (const [, id] of names.slice(d * 30, d * 30 + 30)) expected.push([CMD.SEARCH, id]);
  }
  expect(c.got).toEqual(expected);
  expect(h.server.stats().searchReplies).toBe(90);
  expect(h.server.stats().searchDatagrams).toBe(3);
});

test("a search thread that dies is replaced on the same port with the current names", async () => {
  h = await startCaServer();
  h.registry.add({ name: "ST:A", kind: "double" });
  const c = await client();
  c.send(searchDatagram(1, [["ST:A", 1]]));
  await c.until(2);
  expect(c.got).toEqual([
    [CMD.VERSION, 1],
    [CMD.SEARCH, 1],
  ]);
  h.server.crashSearchThreadForTest();
  // Added while no thread runs: the replacement starts from the registry, so it knows the name.
  h.registry.add({ name: "ST:B", kind: "double" });
  let seq = 2;
  const deadline = Date.now() + 10_000;
  while (!c.got.some(([cmd, id]) => cmd === CMD.SEARCH && id === 2) && Date.now() < deadline) {
    c.send(searchDatagram(seq++, [["ST:B", 2]]));
    await c.until(c.got.length + 1, 100);
  }
  expect(c.got.some(([cmd, id]) => cmd === CMD.SEARCH && id === 2)).toBe(true);
  // Counters live on across the restart (shared memory owned by the server, not the thread).
  expect(h.server.stats().searchReplies).toBeGreaterThanOrEqual(2);
});

test("stop() while start() is still binding settles both", async () => {
  const { CaServer } = await import("../../../src/ca/server/index.ts");
  const { PvRegistry } = await import("../../../src/pv/registry.ts");
  const { testLogger } = await import("../../helpers/ca-harness.ts");
  const s = new CaServer({
    registry: new PvRegistry(),
    logger: testLogger(),
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
  });
  const starting = s.start().then(
    () => "started",
    (e: Error) => `failed: ${e.message}`,
  );
  await s.stop();
  const outcome = await starting;
  // Either it finished binding before stop() got in, or it failed cleanly; it never hangs.
  expect(outcome === "started" || outcome.startsWith("failed:")).toBe(true);
  await s.stop();
});
