/**
 * The /pvs/* proxy and CORS as Elysia plugins on their own: a real CA server in this process
 * (random port) serves the PVs, the proxy reaches them through the libca client, requests go
 * through `app.handle` (no listening socket needed).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { caClient, closeCaClient } from "../../ffi/index.ts";
import { cors, parseCorsOrigins } from "../../src/api/cors.ts";
import { MAX_MONITORS, pvsProxy } from "../../src/api/pvs-proxy.ts";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";

const savedEnv: Record<string, string | undefined> = {};
let h: CaHarness;
let app: { handle(r: Request): Promise<Response> };

beforeAll(async () => {
  h = await startCaServer();
  for (const k of Object.keys(h.env)) savedEnv[k] = process.env[k];
  Object.assign(process.env, h.env);
  h.registry.add({ name: "PX:DBL", kind: "double", writable: true, initial: 1.5 });
  h.registry.add({
    name: "PX:ARR",
    kind: "long",
    count: 3,
    writable: true,
    initial: new Int32Array([1, 2, 3]),
  });
  h.registry.add({ name: "PX:RO", kind: "long", writable: false, initial: 7 });
  app = new Elysia({ prefix: "/api/v1" }).use(pvsProxy({ ca: () => caClient() }));
});

afterAll(async () => {
  await closeCaClient();
  await h.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function call(method: string, path: string, body?: unknown) {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { "content-type": "application/json" };
  }
  const res = await app.handle(new Request(`http://localhost/api/v1${path}`, init));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("/pvs proxy", () => {
  test("provider, get, put (waits for completion), arrays as JSON lists", async () => {
    expect(await call("GET", "/pvs/provider")).toEqual({ status: 200, body: { provider: "ca" } });
    expect(await call("POST", "/pvs/get", { pv_name: "PX:DBL" })).toEqual({
      status: 200,
      body: { ok: true, pv_name: "PX:DBL", value: 1.5, error: null },
    });
    expect((await call("POST", "/pvs/get", { pv_name: "PX:ARR" })).body.value).toEqual([1, 2, 3]);
    expect(await call("POST", "/pvs/put", { pv_name: "PX:DBL", value: 4.25 })).toEqual({
      status: 200,
      body: { ok: true, pv_name: "PX:DBL", error: null },
    });
    expect(h.registry.get("PX:DBL")?.value).toBe(4.25);
  });
  test("CA failures keep 2.7.9's fields with an honest status", async () => {
    const missing = await call("POST", "/pvs/get", { pv_name: "PX:NOPE", timeout: 0.3 });
    expect(missing.status).toBe(504);
    expect(missing.body).toMatchObject({ ok: false, pv_name: "PX:NOPE", value: null });
    expect(String(missing.body.detail)).toContain("PX:NOPE");
    const ro = await call("POST", "/pvs/put", { pv_name: "PX:RO", value: 1, timeout: 2 });
    expect(ro.status).toBeGreaterThanOrEqual(400);
    expect(ro.body.ok).toBe(false);
    expect(h.registry.get("PX:RO")?.value).toBe(7);
  });
  test("bad input is a 422 naming the field", async () => {
    for (const body of [
      {},
      { pv_name: "" },
      { pv_name: "A B" },
      { pv_name: "PX:DBL", timeout: 0 },
      { pv_name: "PX:DBL", timeout: 1e9 },
    ]) {
      expect((await call("POST", "/pvs/get", body)).status).toBe(422);
    }
    expect((await call("POST", "/pvs/put", { pv_name: "PX:DBL" })).status).toBe(422);
    expect((await call("POST", "/pvs/put", { pv_name: "PX:DBL", value: { a: 1 } })).status).toBe(
      422,
    );
  });
  test("monitors: named, replaced, listed with their latest value, stopped; bounded", async () => {
    const m = await call("POST", "/pvs/monitor", { pv_name: "PX:DBL", name: "dbl" });
    expect(m.body).toEqual({ ok: true, key: "dbl", message: "Monitoring PX:DBL" });
    h.registry.get("PX:DBL")?.post(9.5);
    for (let i = 0; i < 200; i++) {
      const l = await call("GET", "/pvs/monitors");
      const dbl = (l.body.monitors as Record<string, { value: unknown }>).dbl;
      if (dbl?.value === 9.5) break;
      await Bun.sleep(25);
    }
    const list = await call("GET", "/pvs/monitors");
    expect(list.body.count).toBe(1);
    expect((list.body.monitors as Record<string, unknown>).dbl).toMatchObject({
      pv_name: "PX:DBL",
      value: 9.5,
      connected: true,
    });
    expect((await call("POST", "/pvs/monitor", { pv_name: "PX:ARR", name: "dbl" })).body.key).toBe(
      "dbl",
    );
    expect((await call("GET", "/pvs/monitors")).body.count).toBe(1);
    expect(await call("DELETE", "/pvs/monitor/dbl")).toEqual({
      status: 200,
      body: { ok: true, key: "dbl", message: "Stopped monitoring dbl" },
    });
    const gone = await call("DELETE", "/pvs/monitor/dbl");
    expect(gone.status).toBe(404);
    expect(gone.body.detail).toBe("No active monitor with key 'dbl'");
    for (let i = 0; i < MAX_MONITORS; i++)
      await call("POST", "/pvs/monitor", { pv_name: "PX:DBL", name: `m${i}` });
    const over = await call("POST", "/pvs/monitor", { pv_name: "PX:DBL", name: "one-more" });
    expect(over.status).toBe(429);
    for (let i = 0; i < MAX_MONITORS; i++) await call("DELETE", `/pvs/monitor/m${i}`);
  });
});

describe("CORS", () => {
  const withCors = (origins: string) =>
    new Elysia()
      .use(cors(parseCorsOrigins(origins)))
      .get("/api/v1/health", () => ({ status: "ok" }));
  test("off by default: no headers", async () => {
    const app2 = new Elysia().use(cors(parseCorsOrigins(undefined))).get("/x", () => "y");
    const r = await app2.handle(
      new Request("http://localhost/x", { headers: { origin: "https://a.example" } }),
    );
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
  });
  test("an allowed origin gets the headers and its preflight a 204; others get nothing", async () => {
    const a = withCors("https://dash.example.org");
    const ok = await a.handle(
      new Request("http://localhost/api/v1/health", {
        headers: { origin: "https://dash.example.org" },
      }),
    );
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://dash.example.org");
    const pre = await a.handle(
      new Request("http://localhost/api/v1/plugins", {
        method: "OPTIONS",
        headers: {
          origin: "https://dash.example.org",
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type",
        },
      }),
    );
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-methods")).toContain("POST");
    expect(pre.headers.get("access-control-allow-headers")).toBe("content-type");
    const other = await a.handle(
      new Request("http://localhost/api/v1/health", {
        headers: { origin: "https://evil.example" },
      }),
    );
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
  test("* allows any origin (echoed, so credentials work)", async () => {
    const r = await withCors("*").handle(
      new Request("http://localhost/api/v1/health", {
        headers: { origin: "http://localhost:5173" },
      }),
    );
    expect(r.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
  });
});
