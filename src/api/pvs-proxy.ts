/**
 * 2.7.9's REST PV proxy (`/pvs/*`): read, write and watch any PV reachable over Channel Access,
 * through the same libca client plugins use (created on first use in the server's thread). PVA is
 * not proxied yet; `GET /pvs/provider` says "ca".
 *
 * Differences from 2.7.9, on purpose: failures have honest status codes (504 timeout, 502 other
 * CA errors, 422 bad input) where upstream answered 200 with ok:false (the body keeps the same
 * fields, plus `detail`); monitors keep their latest value and update count, readable in
 * `GET /pvs/monitors` (upstream only logged them); at most MAX_MONITORS at a time.
 */
import { Elysia, t } from "elysia";

/** Most REST monitors open at once. */
export const MAX_MONITORS = 100;
const PV_NAME = t.String({ minLength: 1, maxLength: 255, pattern: "^[^\\s\"'\\\\]+$" });
const TIMEOUT = t.Optional(t.Number({ exclusiveMinimum: 0, maximum: 60 }));

/** The part of the CA client the proxy uses (the plugins' client satisfies it). */
export interface ProxyCaClient {
  get(name: string, opts: { timeout: number; as: "value" }): Promise<{ value: unknown }>;
  put(name: string, value: unknown, opts: { wait: boolean; timeout: number }): Promise<void>;
  monitor(
    name: string,
    opts: { as: "value"; onUpdate: (r: { value: unknown }) => void },
  ): { close(): void };
  onConnection(name: string, cb: (connected: boolean) => void): () => void;
}

/** What the proxy needs: the CA client (created lazily, after EPICS_CA_* are set). */
export interface PvProxyDeps {
  ca(): ProxyCaClient;
}

interface RestMonitor {
  pv_name: string;
  close(): void;
  value: unknown;
  updates: number;
  connected: boolean;
  unwatch(): void;
}

/** JSON cannot carry typed arrays or non-finite numbers. */
function jsonValue(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return Array.from(v as unknown as ArrayLike<number>, (x) => (Number.isFinite(x) ? x : null));
  }
  if (typeof v === "number" && !Number.isFinite(v)) return null;
  return v;
}

function caFailure(e: unknown): { status: number; error: string } {
  const name = e instanceof Error ? e.constructor.name : "";
  const error = e instanceof Error ? e.message : String(e);
  if (name === "CaTimeoutError") return { status: 504, error };
  if (name === "CaBadTypeError") return { status: 422, error };
  if (name === "CaNoAccessError") return { status: 403, error };
  return { status: 502, error };
}

/** The `/pvs/*` routes (mounted under /api/v1). */
export function pvsProxy(deps: PvProxyDeps) {
  const monitors = new Map<string, RestMonitor>();
  const closeMonitor = (key: string) => {
    const m = monitors.get(key);
    if (!m) return false;
    m.close();
    m.unwatch();
    monitors.delete(key);
    return true;
  };
  return new Elysia({ name: "iocmng-pvs-proxy" })
    .use(pvsReadWrite(deps))
    .post(
      "/pvs/monitor",
      ({ body, set }) => {
        const key = body.name ?? body.pv_name;
        if (!monitors.has(key) && monitors.size >= MAX_MONITORS) {
          set.status = 429;
          const detail = `at most ${MAX_MONITORS} monitors; DELETE /pvs/monitor/{key} first`;
          return { ok: false, key, message: detail, detail };
        }
        closeMonitor(key);
        monitors.set(key, openMonitor(deps.ca(), body.pv_name));
        return { ok: true, key, message: `Monitoring ${body.pv_name}` };
      },
      {
        body: t.Object({
          pv_name: PV_NAME,
          name: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
        }),
        detail: { tags: ["pvs"], summary: "Start (or replace) a named monitor" },
      },
    )
    .delete(
      "/pvs/monitor/:key",
      ({ params, set }) => {
        if (!closeMonitor(params.key)) {
          set.status = 404;
          const detail = `No active monitor with key '${params.key}'`;
          return { ok: false, key: params.key, message: detail, detail };
        }
        return { ok: true, key: params.key, message: `Stopped monitoring ${params.key}` };
      },
      { detail: { tags: ["pvs"], summary: "Stop a monitor" } },
    )
    .get(
      "/pvs/monitors",
      () => {
        const out: Record<string, unknown> = {};
        for (const [k, m] of monitors) {
          out[k] = {
            pv_name: m.pv_name,
            connected: m.connected,
            updates: m.updates,
            value: m.value,
          };
        }
        return { monitors: out, count: monitors.size };
      },
      { detail: { tags: ["pvs"], summary: "Open REST monitors with their latest values" } },
    )
    .onStop(() => {
      for (const k of [...monitors.keys()]) closeMonitor(k);
    });
}

/** Provider, read and write: one CA call each, no state. */
function pvsReadWrite(deps: PvProxyDeps) {
  return new Elysia({ name: "iocmng-pvs-read-write" })
    .get("/pvs/provider", () => ({ provider: "ca" }), {
      detail: { tags: ["pvs"], summary: "The protocol the proxy uses (ca)" },
    })
    .post(
      "/pvs/get",
      async ({ body, set }) => {
        try {
          const r = await deps.ca().get(body.pv_name, { timeout: body.timeout ?? 5, as: "value" });
          return { ok: true, pv_name: body.pv_name, value: jsonValue(r.value), error: null };
        } catch (e) {
          const f = caFailure(e);
          set.status = f.status;
          return { ok: false, pv_name: body.pv_name, value: null, error: f.error, detail: f.error };
        }
      },
      {
        body: t.Object({ pv_name: PV_NAME, timeout: TIMEOUT }),
        detail: { tags: ["pvs"], summary: "Read a PV over CA" },
      },
    )
    .post(
      "/pvs/put",
      async ({ body, set }) => {
        try {
          await deps.ca().put(body.pv_name, body.value, { wait: true, timeout: body.timeout ?? 5 });
          return { ok: true, pv_name: body.pv_name, error: null };
        } catch (e) {
          const f = caFailure(e);
          set.status = f.status;
          return { ok: false, pv_name: body.pv_name, error: f.error, detail: f.error };
        }
      },
      {
        body: t.Object({
          pv_name: PV_NAME,
          value: t.Union([
            t.Number(),
            t.String({ maxLength: 65536 }),
            t.Boolean(),
            t.Array(t.Union([t.Number(), t.String({ maxLength: 40 })]), { maxItems: 100000 }),
          ]),
          timeout: TIMEOUT,
        }),
        detail: { tags: ["pvs"], summary: "Write a PV over CA (waits for completion)" },
      },
    );
}

/** A REST monitor: the PV's latest value, its update count and connection state. */
function openMonitor(ca: ProxyCaClient, pvName: string): RestMonitor {
  const m: RestMonitor = {
    pv_name: pvName,
    value: null,
    updates: 0,
    connected: false,
    close: () => {},
    unwatch: () => {},
  };
  const sub = ca.monitor(pvName, {
    as: "value",
    onUpdate: (r) => {
      m.value = jsonValue(r.value);
      m.updates++;
    },
  });
  m.close = () => sub.close();
  m.unwatch = ca.onConnection(pvName, (up) => {
    m.connected = up;
  });
  return m;
}
