/**
 * `/metrics` in the Prometheus text format, through prom-client (the Node ecosystem's reference
 * client: naming, escaping and types are its job, not ours). Counters that other parts already
 * keep (CA server, PVWS, log rings) are read at scrape time; events without a counter elsewhere
 * (REST requests, plugin cycles, restarts) are observed here.
 *
 * Names follow the Prometheus conventions: `iocmng_` namespace, base units (seconds, bytes),
 * `_total` for counters.
 */

import { type AnyElysia, Elysia } from "elysia";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { CaServerStats } from "../ca/server/index.ts";
import type { TaskMode } from "../common/names.ts";
import type { PvSource } from "../pv/source.ts";
import type { PvaServerStats } from "../pva/server/index.ts";
import type { PvwsStats } from "../pvws/session.ts";
import type { LogRings } from "../web/logring.ts";
import { CycleObserver, type CyclePlugin } from "./cycles.ts";
import { pluginResourceMetrics } from "./plugin-resources.ts";

/** What the metrics need of a plugin (a subset of the REST PluginInfo). */
export interface MetricsPlugin {
  name: string;
  kind: "task" | "job";
  mode?: TaskMode;
  status: string;
  prefix: string;
  running: boolean;
  cycleCount?: number;
  parameters?: Record<string, unknown>;
}

export interface MetricsDeps {
  ca?: { stats(): CaServerStats };
  /** The pvAccess server, when it runs. */
  pva?: { stats(): PvaServerStats };
  pvws?: { stats: PvwsStats };
  plugins: {
    list(kind: "task" | "job"): MetricsPlugin[];
    /** The OS pid of a plugin's process (resource series), or null. */
    pidOf?(name: string): number | null;
  };
  source: PvSource;
  logs?: LogRings;
}

/** Cycle periods/durations of beamline tasks: from 1 ms to a minute. */
const CYCLE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const LATENESS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30];
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120];

/** A counter whose value is read from elsewhere at scrape time. */
function mirrorCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | undefined,
): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      this.reset();
      if (v !== undefined && Number.isFinite(v) && v > 0) this.inc(v);
    },
  });
}

function mirrorGauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | undefined,
): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      this.set(v !== undefined && Number.isFinite(v) ? v : 0);
    },
  });
}

function caMetrics(r: Registry, ca: { stats(): CaServerStats }): void {
  // One stats() per scrape, shared by all CA series.
  let cached: CaServerStats | undefined;
  let at = -1;
  const s = (): CaServerStats => {
    const now = performance.now();
    if (cached === undefined || now - at > 50) {
      cached = ca.stats();
      at = now;
    }
    return cached;
  };
  const g = (n: string, h: string, f: (x: CaServerStats) => number) =>
    mirrorGauge(r, `iocmng_ca_${n}`, h, () => f(s()));
  const c = (n: string, h: string, f: (x: CaServerStats) => number) =>
    mirrorCounter(r, `iocmng_ca_${n}_total`, h, () => f(s()));
  g("circuits", "Open CA client circuits (TCP connections).", (x) => x.circuits);
  g("channels", "Open CA channels over all circuits.", (x) => x.channels);
  g("subscriptions", "Active CA monitors (EVENT_ADD).", (x) => x.subscriptions);
  g("pvs_in_use", "PVs with at least one open CA channel.", (x) => x.pvsInUse);
  g("queued_bytes", "Bytes waiting to be sent to CA clients.", (x) => x.queuedBytes);
  c("requests", "CA TCP requests parsed.", (x) => x.requests);
  c("updates_sent", "CA monitor updates sent.", (x) => x.updatesSent);
  c(
    "updates_coalesced",
    "CA monitor updates replaced by a newer value before sending (slow clients).",
    (x) => x.updatesCoalesced,
  );
  c("sent_bytes", "Bytes sent on CA circuits.", (x) => x.bytesSent);
  c(
    "circuits_dropped",
    "CA circuits dropped by the server (protocol errors, flooding).",
    (x) => x.circuitsDropped,
  );
  c(
    "circuits_refused",
    "CA connections refused (per-host or total limits).",
    (x) => x.circuitsRefused,
  );
  c("search_datagrams", "CA search datagrams received.", (x) => x.searchDatagrams);
  c("searches_answered", "CA search replies sent (names found).", (x) => x.searchReplies);
  c(
    "search_replies_dropped",
    "CA search replies that could not be sent.",
    (x) => x.searchRepliesDropped,
  );
  c("bad_datagrams", "Malformed CA UDP datagrams.", (x) => x.badDatagrams);
  c("beacons_sent", "CA beacons sent.", (x) => x.beaconsSent);
  c("internal_errors", "CA requests whose handler failed (server bugs).", (x) => x.internalErrors);
}

function pvaMetrics(r: Registry, pva: { stats(): PvaServerStats }): void {
  let cached: PvaServerStats | undefined;
  let at = -1;
  const s = (): PvaServerStats => {
    const now = performance.now();
    if (cached === undefined || now - at > 50) {
      cached = pva.stats();
      at = now;
    }
    return cached;
  };
  const g = (n: string, h: string, f: (x: PvaServerStats) => number) =>
    mirrorGauge(r, `iocmng_pva_${n}`, h, () => f(s()));
  const c = (n: string, h: string, f: (x: PvaServerStats) => number) =>
    mirrorCounter(r, `iocmng_pva_${n}_total`, h, () => f(s()));
  g("connections", "Open pvAccess client connections.", (x) => x.connections);
  g("channels", "Open pvAccess channels.", (x) => x.channels);
  g(
    "operations",
    "Active pvAccess operations (monitors, gets, puts in progress).",
    (x) => x.operations,
  );
  g("queued_bytes", "Bytes waiting to be sent to pvAccess clients.", (x) => x.queuedBytes);
  c("messages", "pvAccess messages received.", (x) => x.messages);
  c("bad_messages", "Malformed pvAccess messages.", (x) => x.badMessages);
  c("updates_sent", "pvAccess monitor updates sent.", (x) => x.updatesSent);
  c(
    "updates_squashed",
    "pvAccess monitor updates replaced by a newer value (slow clients).",
    (x) => x.updatesSquashed,
  );
  c("sent_bytes", "Bytes sent on pvAccess connections.", (x) => x.bytesSent);
  c(
    "connections_dropped",
    "pvAccess connections dropped by the server.",
    (x) => x.connectionsDropped,
  );
  c("connections_refused", "pvAccess connections refused (limits).", (x) => x.connectionsRefused);
  c("refusals", "pvAccess requests refused.", (x) => x.refusals);
  c("search_datagrams", "pvAccess search datagrams received.", (x) => x.searchDatagrams);
  c("searches_answered", "pvAccess search replies sent.", (x) => x.searchReplies);
  c("bad_datagrams", "Malformed pvAccess UDP datagrams.", (x) => x.badDatagrams);
  c("beacons_sent", "pvAccess beacons sent.", (x) => x.beaconsSent);
}

function pvwsMetrics(r: Registry, p: { stats: PvwsStats }): void {
  const st = p.stats;
  mirrorGauge(r, "iocmng_pvws_clients", "Connected PV Web Socket clients.", () => st.clients);
  mirrorGauge(
    r,
    "iocmng_pvws_subscriptions",
    "PV subscriptions over all PVWS clients.",
    () => st.subscriptions,
  );
  mirrorCounter(
    r,
    "iocmng_pvws_updates_sent_total",
    "PVWS update messages sent.",
    () => st.updatesSent,
  );
  mirrorCounter(
    r,
    "iocmng_pvws_updates_squashed_total",
    "PVWS updates replaced by a newer value before a slow client took them.",
    () => st.updatesSquashed,
  );
  mirrorCounter(
    r,
    "iocmng_pvws_sent_bytes_total",
    "Bytes of PVWS messages sent.",
    () => st.bytesSent,
  );
  mirrorCounter(r, "iocmng_pvws_writes_total", "PV writes requested over PVWS.", () => st.writes);
  mirrorCounter(
    r,
    "iocmng_pvws_writes_refused_total",
    "PVWS writes refused (read-only, limits, token, plugin).",
    () => st.writesRefused,
  );
  mirrorCounter(
    r,
    "iocmng_pvws_bad_messages_total",
    "PVWS client messages answered with an error.",
    () => st.badMessages,
  );
}

/** Interval (s) of a continuous task, from its parameters (the config default is 1 s). */
function intervalOf(p: MetricsPlugin): number {
  const v = Number(p.parameters?.interval);
  return Number.isFinite(v) && v > 0 ? v : 1;
}

/** Status, up, cycle count and error count of every plugin, read at scrape time. */
function pluginStateMetrics(
  r: Registry,
  all: () => MetricsPlugin[],
  logs: LogRings | undefined,
): void {
  const lbl = ["plugin", "kind"] as const;
  new Gauge({
    name: "iocmng_plugin_status",
    help: "Plugin STATUS (1 for the plugin's current status label).",
    labelNames: ["plugin", "kind", "status"],
    registers: [r],
    collect() {
      this.reset();
      for (const p of all()) this.set({ plugin: p.name, kind: p.kind, status: p.status }, 1);
    },
  });
  new Gauge({
    name: "iocmng_plugin_up",
    help: "1 while the plugin runs (loaded, not stopped, responsive).",
    labelNames: lbl,
    registers: [r],
    collect() {
      this.reset();
      for (const p of all()) this.set({ plugin: p.name, kind: p.kind }, p.running ? 1 : 0);
    },
  });
  new Counter({
    name: "iocmng_plugin_cycles_total",
    help: "Cycles (execute() calls) of a task: its CYCLE_COUNT.",
    labelNames: ["plugin"],
    registers: [r],
    collect() {
      this.reset();
      for (const p of all()) {
        if (p.kind === "task") this.inc({ plugin: p.name }, Math.max(0, p.cycleCount ?? 0));
      }
    },
  });
  new Counter({
    name: "iocmng_plugin_errors_total",
    help: "Error lines a plugin logged (failed execute(), uncaught errors, refused exits).",
    labelNames: ["plugin"],
    registers: [r],
    collect() {
      this.reset();
      for (const p of all()) this.inc({ plugin: p.name }, logs?.errorCount(p.name) ?? 0);
    },
  });
}

/** Per-plugin series: status, up, cycles, errors, restarts, cycle timing histograms. */
function pluginMetrics(
  r: Registry,
  deps: MetricsDeps,
): { restarts: Counter<"plugin">; stop(): void } {
  const all = () => [...deps.plugins.list("task"), ...deps.plugins.list("job")];

  pluginStateMetrics(r, all, deps.logs);
  const pidOf = deps.plugins.pidOf?.bind(deps.plugins);
  if (pidOf) pluginResourceMetrics(r, () => all().map((p) => p.name), pidOf);
  const restarts = new Counter({
    name: "iocmng_plugin_restarts_total",
    help: "Successful restarts (re-clone and reload) of a plugin through REST.",
    labelNames: ["plugin"],
    registers: [r],
  });
  const period = new Histogram({
    name: "iocmng_plugin_cycle_period_seconds",
    help: "Time between the ends of two cycles of a continuous task (its real period).",
    labelNames: ["plugin"],
    buckets: CYCLE_BUCKETS,
    registers: [r],
  });
  const lateness = new Histogram({
    name: "iocmng_plugin_cycle_lateness_seconds",
    help: "How much a continuous task's period exceeded its interval (0 when on time).",
    labelNames: ["plugin"],
    buckets: LATENESS_BUCKETS,
    registers: [r],
  });
  const duration = new Histogram({
    name: "iocmng_plugin_cycle_duration_seconds",
    help: "Duration of a triggered task's execute(), from RUN accepted to RUN done.",
    labelNames: ["plugin"],
    buckets: CYCLE_BUCKETS,
    registers: [r],
  });

  const byPrefix = new Map<string, CyclePlugin>();
  const pluginOf = (prefix: string): CyclePlugin | undefined => {
    let p = byPrefix.get(prefix);
    if (p === undefined) {
      // A new plugin (or a restarted one with another interval): refresh the whole map once.
      byPrefix.clear();
      for (const x of deps.plugins.list("task")) {
        const entry: CyclePlugin = { name: x.name, interval: intervalOf(x) };
        if (x.mode !== undefined) entry.mode = x.mode;
        byPrefix.set(x.prefix, entry);
      }
      p = byPrefix.get(prefix);
    }
    return p;
  };
  const cycles = new CycleObserver(deps.source, pluginOf, {
    period: (plugin, sec, late) => {
      period.observe({ plugin }, sec);
      lateness.observe({ plugin }, late);
    },
    duration: (plugin, sec) => duration.observe({ plugin }, sec),
  });
  const offRemove = deps.source.onRemove((pv) => {
    // Forget a removed plugin's prefix so a re-add with other parameters is looked up again.
    for (const prefix of byPrefix.keys())
      if (pv.name.startsWith(`${prefix}:`)) byPrefix.delete(prefix);
  });

  return {
    restarts,
    stop: () => {
      cycles.stop();
      offRemove();
    },
  };
}

/** REST requests by route and status, their duration, restarts; and GET /metrics itself. */
function httpMetrics(r: Registry, restarts: Counter<"plugin">): AnyElysia {
  const requests = new Counter({
    name: "iocmng_http_requests_total",
    help: "HTTP requests by method, route pattern and status.",
    labelNames: ["method", "route", "status"],
    registers: [r],
  });
  const latency = new Histogram({
    name: "iocmng_http_request_duration_seconds",
    help: "HTTP request duration by method and route pattern.",
    labelNames: ["method", "route"],
    buckets: HTTP_BUCKETS,
    registers: [r],
  });

  const started = new WeakMap<Request, number>();
  const plugin = new Elysia({ name: "iocmng-metrics" })
    // onRequest is global by nature (it runs before routing).
    .onRequest(({ request }) => {
      started.set(request, performance.now());
    })
    .onAfterResponse({ as: "global" }, (ctx) => {
      const { request, set } = ctx;
      // The route pattern ("/api/v1/tasks/:name"), never the raw path: bounded label values.
      const route = "route" in ctx && typeof ctx.route === "string" ? ctx.route : "unmatched";
      const status = String(typeof set.status === "number" ? set.status : 200);
      requests.inc({ method: request.method, route, status });
      const t0 = started.get(request);
      if (t0 !== undefined)
        latency.observe({ method: request.method, route }, (performance.now() - t0) / 1000);
      if (/\/(tasks|jobs)\/:name\/restart$/.test(route) && status === "200") {
        const name = (ctx.params as Record<string, string> | undefined)?.name;
        if (name !== undefined) restarts.inc({ plugin: name });
      }
    })
    .get(
      "/metrics",
      async ({ set }) => {
        set.headers["content-type"] = r.contentType;
        return await r.metrics();
      },
      { detail: { hide: true } },
    );

  return plugin;
}

export interface Metrics {
  registry: Registry;
  /** Elysia plugin: GET /metrics, and the REST request observer (mount it before the REST app). */
  plugin: AnyElysia;
  /** The Prometheus text. */
  text(): Promise<string>;
  stop(): void;
}

export function createMetrics(deps: MetricsDeps): Metrics {
  const r = new Registry();
  // prom-client samples the event-loop delay with perf_hooks.monitorEventLoopDelay at this
  // resolution (default 10 ms). Bun implements that with a timer, so the default woke the server's
  // main thread 100 times a second, idle or not, in the way of the CA/PVA requests it serves (seen
  // with strace: epoll_pwait2 with a 10 ms timeout in a loop). The lag series are dropped below, so
  // the monitor only needs to exist: one sample a minute.
  collectDefaultMetrics({ register: r, prefix: "iocmng_", eventLoopMonitoringPrecision: 60_000 });
  // The lag and GC-duration series are not kept: Bun's GC has no perf_hooks entries, and a lag
  // sampled once a minute says nothing.
  for (const m of r.getMetricsAsArray()) {
    if (/eventloop_lag|_gc_duration/.test(m.name)) r.removeSingleMetric(m.name);
  }
  if (deps.ca) caMetrics(r, deps.ca);
  if (deps.pva) pvaMetrics(r, deps.pva);
  if (deps.pvws) pvwsMetrics(r, deps.pvws);
  const plugins = pluginMetrics(r, deps);
  const plugin = httpMetrics(r, plugins.restarts);
  return {
    registry: r,
    plugin,
    text: () => r.metrics(),
    stop: plugins.stop,
  };
}
