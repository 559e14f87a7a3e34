/**
 * REST routes the console needs beyond the plugin API (mounted under /api/v1):
 *
 *   GET /console/plugins             every plugin with its last error and the process' resources
 *   GET /plugins/{name}/logs?after=N recent log lines of a plugin (bounded ring)
 *   GET /plugins/{name}/logs/stream  the same, live (Server-Sent Events)
 *   GET /plugins/{name}/progress     an add's validation steps, live (progress-route.ts)
 *
 * `GET /plugins` and a job's last results (`GET /jobs/{name}/results`) are the 2.7.9 routes of
 * src/api/compat.ts (one job history, src/compat/job-history.ts); the console reads those.
 */
import { Elysia, t } from "elysia";
import { type PluginInfo, PluginInfo as PluginInfoSchema } from "../api/models.ts";
import { PluginName } from "../common/add-request.ts";
import { overviewScreen, pluginScreen, type ScreenPlugin } from "../display/bob.ts";
import { procUsage } from "../metrics/proc-usage.ts";
import type { AddProgress } from "../plugins/progress.ts";
import type { PvSource } from "../pv/source.ts";
import type { LogRings } from "./logring.ts";
import { progressRoute } from "./progress-route.ts";
import { sseEvent, sseResponse } from "./sse.ts";

export interface ConsoleDeps {
  plugins: {
    list(kind: "task" | "job"): PluginInfo[];
    /** The OS pid of a plugin's process (its resource use), or null. */
    pidOf?(name: string): number | null;
    /** Steps of adds in flight (GET /plugins/{name}/progress). */
    progress?: AddProgress;
  };
  logs: LogRings;
  /** For the PV metadata (units, limits, states) of the screens. */
  source: PvSource;
}

/** A plugin with its PVs' definitions, as the screen generator takes it. */
function screenPlugin(p: PluginInfo, source: PvSource): ScreenPlugin {
  const out: ScreenPlugin = {
    name: p.name,
    kind: p.kind,
    prefix: p.prefix,
    pvs: p.pvs.map((pv) => {
      const live = source.get(pv.fullName);
      return {
        name: pv.name,
        fullName: pv.fullName,
        kind: pv.kind,
        writable: pv.writable,
        count: live?.count ?? 1,
        meta: live?.meta ?? {},
      };
    }),
  };
  if (p.mode !== undefined) out.mode = p.mode;
  return out;
}

const BOB_HEADERS = { "content-type": "application/xml; charset=utf-8" };

const LogLineSchema = t.Object({
  seq: t.Number(),
  time: t.Number({ description: "ms since the epoch" }),
  level: t.String(),
  msg: t.String(),
});

const ConsolePlugin = t.Composite([
  t.Omit(PluginInfoSchema, ["pvs", "parameters"]),
  t.Object({
    pvCount: t.Number(),
    errors: t.Number({ description: "error lines logged since the server started" }),
    lastError: t.Optional(LogLineSchema),
    process: t.Optional(
      t.Object(
        {
          pid: t.Number(),
          rssBytes: t.Number({ description: "resident memory of the plugin's process" }),
          cpuSeconds: t.Number({ description: "user + system CPU time of the plugin's process" }),
        },
        { description: "the plugin's OS process (absent when it has none running)" },
      ),
    ),
  }),
]);

const Resources = t.Object({
  rssBytes: t.Number(),
  heapUsedBytes: t.Number(),
  cpuSeconds: t.Number(),
  uptimeSeconds: t.Number(),
});

function resources() {
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    uptimeSeconds: process.uptime(),
  };
}

type AllPlugins = () => PluginInfo[];
type PidOf = (name: string) => number | null;

/** GET /console/plugins: every plugin with its last error, and the server's resources. */
function listRoute(all: AllPlugins, logs: LogRings, pidOf: PidOf) {
  return new Elysia({ name: "iocmng-console-list" }).get(
    "/console/plugins",
    () => ({
      plugins: all().map((p) => {
        const { pvs, parameters: _params, ...rest } = p;
        const last = logs.lastError(p.name);
        const pid = pidOf(p.name);
        const usage = pid === null ? null : procUsage(pid);
        return {
          ...rest,
          git_url: rest.git_url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@"),
          pvCount: pvs.length,
          errors: logs.errorCount(p.name),
          ...(last ? { lastError: last } : {}),
          ...(usage ? { process: usage } : {}),
        };
      }),
      resources: resources(),
    }),
    {
      response: t.Object({ plugins: t.Array(ConsolePlugin), resources: Resources }),
      detail: {
        tags: ["console"],
        summary: "Every plugin (tasks and jobs) with its last error, and the server's resources",
      },
    },
  );
}

/** GET /plugins/{name}/logs and …/logs/stream. */
function logRoutes(all: AllPlugins, logs: LogRings) {
  const known = (name: string) => all().some((p) => p.name === name);
  return new Elysia({ name: "iocmng-console-logs" })
    .get(
      "/plugins/:name/logs",
      ({ params, query, set }) => {
        if (!known(params.name) && logs.lines(params.name).length === 0) {
          set.status = 404;
          return { ok: false as const, message: `no plugin named "${params.name}"` };
        }
        return { lines: logs.lines(params.name, query.after ?? 0) };
      },
      {
        params: t.Object({ name: PluginName }),
        query: t.Object({ after: t.Optional(t.Numeric({ minimum: 0 })) }),
        response: {
          200: t.Object({ lines: t.Array(LogLineSchema) }),
          404: t.Object({ ok: t.Literal(false), message: t.String() }),
        },
        detail: {
          tags: ["console"],
          summary: "Recent log lines of a plugin (the last 200; `after` = a line's seq)",
        },
      },
    )
    .get(
      "/plugins/:name/logs/stream",
      ({ params, request, server }) => {
        const name = params.name;
        // A live stream outlasts the server's idle timeout by design.
        server?.timeout(request, 0);
        let off = () => {};
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const l of logs.lines(name)) controller.enqueue(sseEvent("log", l, l.seq));
            off = logs.subscribe((plugin, line) => {
              if (plugin !== name) return;
              // A reader that does not keep up is dropped rather than buffered without bound.
              if ((controller.desiredSize ?? 0) < -256) {
                off();
                controller.close();
                return;
              }
              controller.enqueue(sseEvent("log", line, line.seq));
            });
            request.signal.addEventListener("abort", () => {
              off();
              try {
                controller.close();
              } catch {
                // already closed
              }
            });
          },
          cancel() {
            off();
          },
        });
        return sseResponse(stream);
      },
      {
        params: t.Object({ name: PluginName }),
        detail: {
          tags: ["console"],
          summary: "A plugin's log lines, live (text/event-stream, event `log`)",
        },
      },
    );
}

/** GET /display.bob and /plugins/{name}/display.bob. */
function screenRoutes(all: AllPlugins, source: PvSource) {
  return new Elysia({ name: "iocmng-console-screens" })
    .get(
      "/display.bob",
      () =>
        new Response(overviewScreen(all().map((p) => screenPlugin(p, source))), {
          headers: BOB_HEADERS,
        }),
      {
        detail: {
          tags: ["console"],
          summary: "Phoebus screen: overview of every plugin, linking to theirs",
        },
      },
    )
    .get(
      "/plugins/:name/display.bob",
      ({ params, set }) => {
        const p = all().find((x) => x.name === params.name);
        if (p === undefined) {
          set.status = 404;
          return { ok: false as const, message: `no plugin named "${params.name}"` };
        }
        return new Response(pluginScreen(screenPlugin(p, source)), {
          headers: { ...BOB_HEADERS, "content-disposition": `inline; filename="${p.name}.bob"` },
        });
      },
      {
        params: t.Object({ name: PluginName }),
        detail: {
          tags: ["console"],
          summary: "Phoebus screen of a plugin, generated from its PV definitions",
        },
      },
    );
}

/** The console's routes (mounted under /api/v1). */
export function consoleRoutes(deps: ConsoleDeps) {
  const all = () => [...deps.plugins.list("task"), ...deps.plugins.list("job")];
  const pidOf: PidOf = (name) => deps.plugins.pidOf?.(name) ?? null;
  const app = new Elysia({ name: "iocmng-console-api" })
    .use(listRoute(all, deps.logs, pidOf))
    .use(logRoutes(all, deps.logs))
    .use(screenRoutes(all, deps.source));
  return deps.plugins.progress ? app.use(progressRoute(deps.plugins.progress)) : app;
}
