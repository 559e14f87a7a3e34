/**
 * PVWS serving another IOC's PV (`ca://NAME` not served here) through libca: a real CA server
 * (ours, in this process, on a random loopback port) plays the other IOC; the hub has an empty
 * registry of its own. libca reads EPICS_CA_* when its context is created, so the environment is
 * set before the first use and restored afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Elysia } from "elysia";
import pino from "pino";
import { caClient, closeCaClient, libcaAvailable } from "../../ffi/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PVWS_WEBSOCKET_CONFIG, PvwsHub, pvwsPlugin } from "../../src/pvws/hub.ts";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";
import { decodeB64, PvwsTestClient } from "../helpers/pvws-client.ts";

const savedEnv: Record<string, string | undefined> = {};
let ioc: CaHarness;
let hub: PvwsHub;
let app: { stop(closeActive?: boolean): Promise<unknown> };
let url: string;

beforeAll(async () => {
  expect(libcaAvailable()).toBe(true);
  ioc = await startCaServer();
  for (const k of Object.keys(ioc.env)) savedEnv[k] = process.env[k];
  Object.assign(process.env, ioc.env);
  ioc.registry.add({
    name: "IOC:TEMP",
    kind: "double",
    writable: true,
    initial: 20.5,
    meta: { units: "degC", precision: 2, displayLow: 0, displayHigh: 100 },
  });
  ioc.registry.add({
    name: "IOC:WAVE",
    kind: "double",
    count: 4,
    initial: new Float64Array([1, 2, 3]),
  });
  ioc.registry.add({ name: "IOC:RO", kind: "long", initial: 7 });
  hub = new PvwsHub({ source: new PvRegistry(), apiToken: null, remote: () => caClient() });
  const a = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG }).use(pvwsPlugin(hub));
  a.listen({ hostname: "127.0.0.1", port: 0 });
  app = a;
  url = `ws://127.0.0.1:${a.server?.port}/pvws/pv`;
});

afterAll(async () => {
  await app?.stop(true);
  hub?.dispose();
  await closeCaClient();
  await ioc?.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test("another IOC's PV: metadata and value, changes, a write reaching the IOC, clear", async () => {
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "subscribe", pvs: ["ca://IOC:TEMP", "ca://IOC:WAVE"] });
  const temp = await c.next((m) => m.pv === "ca://IOC:TEMP" && m.connected === true);
  expect(temp).toMatchObject({
    vtype: "VDouble",
    units: "degC",
    precision: 2,
    min: 0,
    max: 100,
    value: 20.5,
  });
  const wave = await c.next((m) => m.pv === "ca://IOC:WAVE" && m.connected === true);
  expect(decodeB64(String(wave.b64dbl), "dbl").slice(0, 3)).toEqual([1, 2, 3]);

  ioc.registry.get("IOC:TEMP")!.post(30.25);
  expect((await c.next((m) => m.pv === "ca://IOC:TEMP" && m.value === 30.25)).type).toBe("update");

  c.send({ type: "write", pv: "ca://IOC:TEMP", value: 42 });
  await c.next((m) => m.pv === "ca://IOC:TEMP" && m.value === 42);
  expect(ioc.registry.get("IOC:TEMP")!.value).toBe(42);

  c.send({ type: "clear", pvs: ["ca://IOC:TEMP", "ca://IOC:WAVE"] });
  await c.sync();
  hub.remote?.sweep();
  expect(hub.remote?.names).toEqual([]);
  c.close();
}, 60_000);

test("a refused remote write comes back as an error", async () => {
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "subscribe", pvs: ["ca://IOC:RO"] });
  await c.next((m) => m.pv === "ca://IOC:RO" && m.connected === true);
  c.send({ type: "write", pv: "ca://IOC:RO", value: 1 });
  const e = await c.next((m) => m.type === "error");
  expect(String(e.message)).toContain("IOC:RO");
  expect(ioc.registry.get("IOC:RO")!.value).toBe(7);
  c.close();
}, 60_000);

test("bare names stay local: a name no one serves here is reported disconnected", async () => {
  const c = await PvwsTestClient.connect(url);
  c.send({ type: "subscribe", pvs: ["IOC:TEMP"] });
  expect(await c.next()).toMatchObject({ pv: "IOC:TEMP", connected: false });
  await c.sync();
  expect(hub.remote?.names).not.toContain("IOC:TEMP");
  c.close();
});

test("without libca: asked once, at the first ca:// name, which is then served only from this IOC's PVs", async () => {
  let asked = 0;
  let built = 0;
  const lines: string[] = [];
  const logger = pino({ level: "warn" }, { write: (s: string) => lines.push(s) });
  const local = new PvRegistry();
  const h = new PvwsHub({
    source: local,
    apiToken: null,
    logger,
    remote: () => {
      built++;
      return caClient();
    },
    remoteAvailable: () => {
      asked++;
      return false;
    },
  });
  const a = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG }).use(pvwsPlugin(h));
  a.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Not at start: finding out loads the library (src/web/mount.ts).
    expect(asked).toBe(0);
    const c = await PvwsTestClient.connect(`ws://127.0.0.1:${a.server?.port}/pvws/pv`);
    // IOC:TEMP is served by the other IOC, which this hub may not reach without libca.
    c.send({ type: "subscribe", pvs: ["ca://IOC:TEMP", "ca://IOC:RO"] });
    await c.next((m) => m.pv === "ca://IOC:RO");
    expect([asked, built]).toEqual([1, 0]);
    expect(lines.filter((l) => l.includes("no Channel Access client library"))).toHaveLength(1);
    // Served here once this IOC has the PV.
    local.add({ name: "IOC:TEMP", kind: "double", initial: 3.5 });
    const m = await c.next((x) => x.pv === "ca://IOC:TEMP" && x.connected === true);
    expect(m.value).toBe(3.5);
    c.close();
  } finally {
    await a.stop(true);
    h.dispose();
  }
});
