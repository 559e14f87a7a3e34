/**
 * PvaServer.warmUp() (src/pva/server/warmup.ts): the synthetic connection really runs the GET and
 * monitor paths (its own counters and bytes say so), nothing of it is visible to clients or in
 * stats(), a real client is served normally afterwards, and stopping the server ends it early.
 */
import { afterEach, expect, test } from "bun:test";
import pino from "pino";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient } from "../helpers/pva-client.ts";

const servers: PvaServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

async function server(): Promise<{ s: PvaServer; registry: PvRegistry }> {
  const registry = new PvRegistry();
  registry.add({ name: "WU:X", kind: "double", initial: 4.25 });
  const s = new PvaServer({
    source: registry,
    logger: pino({ level: "silent" }),
    config: {
      serverPort: 0,
      broadcastPort: 0,
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
    },
  });
  await s.start();
  servers.push(s);
  return { s, registry };
}

test("the warm-up runs GETs and monitor updates on a connection nobody sees", async () => {
  const { s } = await server();
  const before = s.stats();
  const r = await s.warmUp({ gets: 400, rounds: 2, pauseMs: 1, updates: 200, slice: 150 });
  expect(r.cancelled).toBe(false);
  expect([r.gets, r.updates]).toEqual([800, 200]);
  // validation + create + GET INIT + 800 GETs/ECHOs + MONITOR INIT + START
  expect(r.requests).toBe(800 + 5);
  // the first update after START, then one per post
  expect(r.updatesSent).toBeGreaterThanOrEqual(200);
  // every GET was answered: a GET reply of an NTScalar double is more than 100 bytes
  expect(r.bytesSent).toBeGreaterThan(800 * 100);
  const after = s.stats();
  expect(after.messages).toBe(before.messages);
  expect(after.bytesSent).toBe(before.bytesSent);
  expect([after.connections, after.channels, after.operations]).toEqual([0, 0, 0]);
  const c = await PvaClient.connect(s.tcpPort);
  expect((await c.get("WU:X")).value.value).toBe(4.25);
  // The warm-up's PV is in no registry: a client cannot open it.
  await expect(c.channel("IOCMNG:PVA:WARMUP")).rejects.toThrow(/Refused/);
  c.close();
});

test("stopping the server ends the warm-up early", async () => {
  const { s } = await server();
  const running = s.warmUp({ gets: 10_000_000, slice: 100 });
  await Bun.sleep(20);
  await s.stop();
  const r = await running;
  expect(r.cancelled).toBe(true);
  expect(r.gets).toBeLessThan(10_000_000);
});
