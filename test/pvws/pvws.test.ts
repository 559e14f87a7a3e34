/**
 * The PV Web Socket endpoint, spoken to by a real WebSocket client over loopback: subscribe to PVs
 * of different kinds, first update with metadata then changes only, write, clear, list, echo, and
 * bad messages answered with an error while the connection (and server) stays up.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PVWS_WEBSOCKET_CONFIG, PvwsHub, pvwsPlugin } from "../../src/pvws/hub.ts";
import { PvwsSession, type PvwsSink } from "../../src/pvws/session.ts";
import { decodeB64, PvwsTestClient } from "../helpers/pvws-client.ts";

function makeRegistry(): PvRegistry {
  const r = new PvRegistry();
  r.add({
    name: "T:TEMP",
    kind: "double",
    writable: true,
    initial: 21.5,
    meta: {
      units: "degC",
      precision: 2,
      description: "temperature",
      displayLow: 0,
      displayHigh: 100,
      controlLow: 0,
      controlHigh: 100,
      alarm: { high: 80, hihi: 95, low: 5, lolo: 1 },
    },
  });
  r.add({
    name: "T:MODE",
    kind: "enum",
    writable: true,
    initial: 1,
    meta: { states: ["OFF", "ON", "AUTO"] },
  });
  r.add({ name: "T:WAVE", kind: "double", count: 8, initial: new Float64Array([1.5, 2, 3, 4]) });
  r.add({ name: "T:COUNTS", kind: "long", count: 4, initial: new Int32Array([7, -1, 3]) });
  r.add({ name: "T:NAME", kind: "string", initial: "hello" });
  r.add({ name: "T:RO", kind: "long", initial: 5 });
  return r;
}

interface Running {
  registry: PvRegistry;
  hub: PvwsHub;
  url: string;
  stop(): Promise<void>;
}

async function serve(apiToken: string | null = null): Promise<Running> {
  const registry = makeRegistry();
  const hub = new PvwsHub({ source: registry, apiToken });
  const app = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG })
    .use(pvwsPlugin(hub))
    .listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${app.server?.port}/pvws/pv`;
  return {
    registry,
    hub,
    url,
    stop: async () => {
      await app.stop(true);
      hub.dispose();
    },
  };
}

describe("PVWS over a real WebSocket", () => {
  let s: Running;
  beforeAll(async () => {
    s = await serve();
  });
  afterAll(() => s.stop());

  test("subscribe to three kinds: full first update, then changes only", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:TEMP", "ca://T:MODE", "T:WAVE"] });
    const temp = await c.next((m) => m.pv === "T:TEMP");
    expect(temp).toMatchObject({
      type: "update",
      vtype: "VDouble",
      units: "degC",
      precision: 2,
      description: "temperature",
      min: 0,
      max: 100,
      warn_low: 5,
      warn_high: 80,
      alarm_low: 1,
      alarm_high: 95,
      severity: "NONE",
      readonly: false,
      value: 21.5,
      connected: true,
    });
    expect(typeof temp.seconds).toBe("number");
    expect(typeof temp.nanos).toBe("number");
    const mode = await c.next((m) => m.pv === "ca://T:MODE");
    expect(mode).toMatchObject({ vtype: "VEnum", labels: ["OFF", "ON", "AUTO"], value: 1 });
    expect(mode.text).toBe("ON");
    const wave = await c.next((m) => m.pv === "T:WAVE");
    expect(wave).toMatchObject({ vtype: "VDoubleArray", readonly: true });
    expect(decodeB64(String(wave.b64dbl), "dbl")).toEqual([1.5, 2, 3, 4]);

    // A change: value, timestamp and the severity that changed; no metadata, no readonly.
    s.registry.get("T:TEMP")!.post(85);
    const change = await c.next((m) => m.pv === "T:TEMP");
    expect(change.value).toBe(85);
    expect(change.severity).toBe("MINOR");
    expect(change.units).toBeUndefined();
    expect(change.vtype).toBeUndefined();
    expect(change.readonly).toBeUndefined();
    s.registry.get("T:TEMP")!.post(86);
    const again = await c.next((m) => m.pv === "T:TEMP");
    expect(again.value).toBe(86);
    expect(again.severity).toBeUndefined(); // unchanged: not repeated
    s.registry.get("T:WAVE")!.post([9, 8]);
    const w2 = await c.next((m) => m.pv === "T:WAVE");
    expect(decodeB64(String(w2.b64dbl), "dbl")).toEqual([9, 8]);
    s.registry.get("T:MODE")!.post("AUTO");
    const m2 = await c.next((m) => m.pv === "ca://T:MODE");
    expect([m2.value, m2.text]).toEqual([2, "AUTO"]);
    c.close();
  });

  test("int arrays as b64int, strings as text, metadata again after it changed", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:COUNTS", "T:NAME"] });
    const counts = await c.next((m) => m.pv === "T:COUNTS");
    expect(counts.vtype).toBe("VIntArray");
    expect(decodeB64(String(counts.b64int), "int")).toEqual([7, -1, 3]);
    const name = await c.next((m) => m.pv === "T:NAME");
    expect(name).toMatchObject({ vtype: "VString", text: "hello", severity: "NONE" });
    s.registry.get("T:COUNTS")!.setMeta({ units: "cts" });
    const meta = await c.next((m) => m.pv === "T:COUNTS");
    expect(meta.units).toBe("cts");
    c.close();
  });

  test("write goes through Pv.write; refusals come back as errors", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:TEMP", "T:RO", "T:MODE"] });
    await c.next((m) => m.pv === "T:RO");
    await c.next((m) => m.pv === "T:MODE");
    c.send({ type: "write", pv: "T:TEMP", value: 42.25 });
    const w = await c.next((m) => m.pv === "T:TEMP" && m.value === 42.25);
    expect(w.type).toBe("update");
    expect(s.registry.get("T:TEMP")!.value).toBe(42.25);
    c.send({ type: "write", pv: "T:MODE", value: "OFF" });
    await c.next((m) => m.pv === "T:MODE" && m.text === "OFF");

    c.send({ type: "write", pv: "T:TEMP", value: 1000 });
    const range = await c.next((m) => m.type === "error");
    expect(String(range.message)).toContain("drive limits");
    expect(s.registry.get("T:TEMP")!.value).toBe(42.25);
    c.send({ type: "write", pv: "T:RO", value: 1 });
    expect(String((await c.next((m) => m.type === "error")).message)).toContain("read-only");
    c.send({ type: "write", pv: "T:NAME", value: "x" });
    expect(String((await c.next((m) => m.type === "error")).message)).toContain("not subscribed");
    expect(s.registry.get("T:NAME")!.value).toBe("hello");
    c.close();
  });

  test("clear stops updates; list shows what is subscribed", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:TEMP", "T:NAME"] });
    await c.next((m) => m.pv === "T:NAME");
    c.send({ type: "list" });
    const l1 = await c.next((m) => m.type === "list");
    expect(l1.pvs).toEqual(["T:TEMP", "T:NAME"]);
    c.send({ type: "clear", pvs: ["T:TEMP"] });
    c.send({ type: "list" });
    expect((await c.next((m) => m.type === "list")).pvs).toEqual(["T:NAME"]);
    // Changes made now would be sent before the echo's reply if the subscription were still on.
    s.registry.get("T:TEMP")!.post(12);
    s.registry.get("T:NAME")!.post("changed");
    const between = await c.sync();
    expect(between.filter((m) => m.pv === "T:TEMP")).toEqual([]);
    expect(between.filter((m) => m.pv === "T:NAME").map((m) => m.text)).toEqual(["changed"]);
    c.close();
  });

  test("a PV not served reports disconnected, then connects when it is added", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:LATER"] });
    const d = await c.next((m) => m.pv === "T:LATER");
    expect(d).toMatchObject({ connected: false, severity: "UNDEFINED" });
    expect(d.value).toBeUndefined();
    s.registry.add({ name: "T:LATER", kind: "long", initial: 3 });
    const up = await c.next((m) => m.pv === "T:LATER");
    expect(up).toMatchObject({ connected: true, vtype: "VInt", value: 3 });
    s.registry.remove("T:LATER");
    expect(await c.next((m) => m.pv === "T:LATER")).toMatchObject({ connected: false });
    c.close();
  });

  test("bad messages get an error and the connection keeps serving", async () => {
    const c = await PvwsTestClient.connect(s.url);
    const bad: unknown[] = [
      "{not json",
      "42",
      JSON.stringify([1, 2]),
      {},
      { type: "nope" },
      { type: "subscribe" },
      { type: "subscribe", pvs: "T:TEMP" },
      { type: "subscribe", pvs: [17, null, "x".repeat(5000)] },
      { type: "write" },
      { type: "write", pv: "T:TEMP" },
      { type: "auth", token: "x" },
    ];
    for (const b of bad) {
      c.send(b);
      const replies = await c.sync();
      expect(replies.length).toBeGreaterThan(0);
      for (const e of replies) {
        expect(e.type).toBe("error");
        expect(typeof e.message).toBe("string");
      }
    }
    // One bad name among good ones: an error for it, the good one still subscribed.
    c.send({ type: "subscribe", pvs: [42, "T:NAME"] });
    const both = await c.sync();
    expect(both.filter((m) => m.type === "error").length).toBe(1);
    expect(both.filter((m) => m.type === "update").map((m) => m.pv)).toEqual(["T:NAME"]);
    c.send({ type: "echo", hello: "world" });
    expect(await c.next()).toEqual({ type: "echo", hello: "world" });
    expect(c.closed).toBe(false);
    c.close();
  });

  test("a message larger than the limit closes that connection only", async () => {
    const big = await PvwsTestClient.connect(s.url);
    const other = await PvwsTestClient.connect(s.url);
    big.send({ type: "subscribe", pvs: ["x".repeat(2 * 1024 * 1024)] });
    await expect(big.next()).rejects.toThrow("closed");
    other.send({ type: "echo", still: "here" });
    expect((await other.next()).still).toBe("here");
    other.close();
  });
});

describe("PVWS writes with an API token", () => {
  let s: Running;
  beforeAll(async () => {
    s = await serve("s3cret");
  });
  afterAll(() => s.stop());

  test("read-only until the token is presented by message", async () => {
    const c = await PvwsTestClient.connect(s.url);
    c.send({ type: "subscribe", pvs: ["T:TEMP"] });
    expect((await c.next()).readonly).toBe(true);
    c.send({ type: "write", pv: "T:TEMP", value: 3 });
    expect(String((await c.next()).message)).toContain("token");
    expect(s.registry.get("T:TEMP")!.value).toBe(21.5);
    c.send({ type: "auth", token: "s3cret" });
    const msgs = [await c.next(), await c.next()];
    expect(msgs.find((m) => m.type === "update")?.readonly).toBe(false);
    c.send({ type: "write", pv: "T:TEMP", value: 3 });
    await c.next((m) => m.value === 3);
    expect(s.registry.get("T:TEMP")!.value).toBe(3);
    c.close();
  });

  test("or by an Authorization header on the upgrade", async () => {
    const c = await PvwsTestClient.connect(s.url, { authorization: "Bearer s3cret" });
    c.send({ type: "subscribe", pvs: ["T:TEMP"] });
    expect((await c.next()).readonly).toBe(false);
    c.close();
  });
});

describe("PVWS session flow control", () => {
  test("a slow client gets the latest value once, the rest squashed", async () => {
    const registry = makeRegistry();
    const hub = new PvwsHub({ source: registry, apiToken: null });
    const sent: string[] = [];
    let buffered = 10 << 20; // the socket is "full"
    const sink: PvwsSink = {
      send: (t) => {
        sent.push(t);
        return t.length;
      },
      getBufferedAmount: () => buffered,
      cork: (fn) => fn(),
      ping: () => {},
    };
    const session = new PvwsSession(hub, sink, { peer: "test", authenticated: false });
    session.handle({ type: "subscribe", pvs: ["T:TEMP"] });
    const pv = registry.get("T:TEMP")!;
    for (let i = 0; i < 1000; i++) pv.post(i % 50);
    session.flush();
    expect(sent).toEqual([]);
    expect(hub.stats.updatesSquashed).toBe(1000);
    buffered = 0;
    session.drained();
    expect(sent.length).toBe(1);
    const m = JSON.parse(sent[0]!) as Record<string, unknown>;
    expect(m.value).toBe(999 % 50);
    expect(m.units).toBe("degC"); // still the full first update
    session.close();
    expect(hub.stats.clients).toBe(0);
    expect(hub.stats.subscriptions).toBe(0);
    expect(pv.listenerCount).toBe(0);
  });
});
