/**
 * Hostile PVWS clients: too many subscriptions, floods of garbage, a client that never reads. The
 * server stays bounded and keeps serving everyone else.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PVWS_WEBSOCKET_CONFIG, PvwsHub, pvwsPlugin } from "../../src/pvws/hub.ts";
import { PvwsSession, type PvwsSink } from "../../src/pvws/session.ts";
import { PvwsTestClient } from "../helpers/pvws-client.ts";

let registry: PvRegistry;
let hub: PvwsHub;
let app: { stop(closeActive?: boolean): Promise<unknown> };
let url: string;

beforeAll(() => {
  registry = new PvRegistry();
  for (let i = 0; i < 50; i++) registry.add({ name: `H:${i}`, kind: "double", writable: true });
  hub = new PvwsHub({
    source: registry,
    apiToken: null,
    limits: { maxSubscriptions: 20, maxControlQueue: 8 },
  });
  const a = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG }).use(pvwsPlugin(hub));
  a.listen({ hostname: "127.0.0.1", port: 0 });
  app = a;
  url = `ws://127.0.0.1:${a.server?.port}/pvws/pv`;
});

afterAll(async () => {
  await app.stop(true);
  hub.dispose();
});

test("subscriptions beyond the limit are refused with an error, the rest served", async () => {
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "subscribe", pvs: Array.from({ length: 50 }, (_, i) => `H:${i}`) });
  const got = await c.sync();
  expect(got.filter((m) => m.type === "update").length).toBe(20);
  expect(got.some((m) => m.type === "error" && String(m.message).includes("more than 20"))).toBe(
    true,
  );
  c.send({ type: "list" });
  expect(((await c.next((m) => m.type === "list")).pvs as string[]).length).toBe(20);
  c.close();
});

test("a flood of garbage gets errors (bounded) and the connection and others keep working", async () => {
  const bad = await PvwsTestClient.connect(url);
  const good = await PvwsTestClient.connect(url);
  good.send({ type: "subscribe", pvs: ["H:1"] });
  await good.next((m) => m.pv === "H:1");
  const junk: string[] = [];
  let seed = 7;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 500; i++) {
    const kind = rnd() % 6;
    if (kind === 0)
      junk.push(String.fromCharCode(...Array.from({ length: rnd() % 40 }, () => rnd() % 256)));
    else if (kind === 1)
      junk.push(JSON.stringify({ type: "write", pv: "H:1", value: { nested: [rnd()] } }));
    else if (kind === 2)
      junk.push(JSON.stringify({ type: "subscribe", pvs: [rnd(), null, {}, []] }));
    else if (kind === 3) junk.push(JSON.stringify({ type: ["x"], pvs: "y" }));
    else if (kind === 4) junk.push("[".repeat(rnd() % 200));
    else junk.push(JSON.stringify({ type: "clear", pvs: [`H:${rnd() % 60}`] }));
  }
  for (const j of junk) bad.send(j);
  const replies = await bad.sync();
  expect(replies.length).toBeGreaterThan(0);
  expect(replies.every((m) => m.type === "error" || m.type === "update")).toBe(true);
  expect(bad.closed).toBe(false);
  // The write of an object was refused: the PV kept its value.
  expect(registry.get("H:1")!.value).toBe(0);
  registry.get("H:1")!.post(5);
  expect((await good.next((m) => m.pv === "H:1")).value).toBe(5);
  bad.close();
  good.close();
});

test("a client that never reads holds at most one update per PV and a few replies", () => {
  const reg = new PvRegistry();
  for (let i = 0; i < 10; i++) reg.add({ name: `S:${i}`, kind: "long" });
  const h = new PvwsHub({ source: reg, apiToken: null, limits: { maxControlQueue: 4 } });
  const sent: string[] = [];
  const sink: PvwsSink = {
    send: (t) => {
      sent.push(t);
      return -1;
    },
    getBufferedAmount: () => 64 << 20, // never drains
    cork: (fn) => fn(),
    ping: () => {},
  };
  const s = new PvwsSession(h, sink, { peer: "slow", authenticated: false });
  s.handle({ type: "subscribe", pvs: Array.from({ length: 10 }, (_, i) => `S:${i}`) });
  for (let round = 0; round < 1000; round++) {
    for (let i = 0; i < 10; i++) reg.get(`S:${i}`)!.post(round + 1);
    s.handle({ type: "echo", round });
  }
  s.flush();
  expect(sent).toEqual([]);
  expect(h.stats.updatesSquashed).toBe(10 * 1000);
  expect(h.stats.repliesDropped).toBe(1000 - 4);
  s.close();
  h.dispose();
});
