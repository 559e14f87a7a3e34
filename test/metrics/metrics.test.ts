/**
 * /metrics of a real server (spawned `serve`) with real plugins from a git repository: the text
 * parses as Prometheus exposition format, and the counters move when pyepics clients and the
 * plugins act.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { COUNTER_TASK, DIAG_JOB, TRIGGERED_TASK } from "../e2e/lib/plugins.ts";
import { py } from "../e2e/lib/pyepics.ts";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "../e2e/lib/server.ts";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { type PromFamily, parseMetrics, sample, total } from "../helpers/prom.ts";
import { PvaClient } from "../helpers/pva-client.ts";

const FAILING_TASK: Record<string, string> = {
  "failing.ts": `import { TaskBase } from "iocmng";
export default class Failing extends TaskBase {
  initialize() {}
  execute() { throw new Error("sensor unplugged"); }
  cleanup() {}
}
`,
  "config.yaml": "parameters:\n  mode: continuous\n  interval: 0.1\n",
};

let dirs: ServerDirs;
let srv: SpawnedServer;
let repo: TestRepo;

async function scrape(): Promise<Map<string, PromFamily>> {
  const res = await fetch(`http://127.0.0.1:${srv.httpPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return parseMetrics(await res.text());
}

beforeAll(async () => {
  const files: Record<string, string> = {};
  for (const [dir, plugin] of Object.entries({
    counter: COUNTER_TASK,
    trig: { ...TRIGGERED_TASK, "config.yaml": TRIGGERED_TASK["config.yaml"]!.replace("700", "50") },
    diag: DIAG_JOB,
    failing: FAILING_TASK,
  })) {
    for (const [f, body] of Object.entries(plugin)) files[`${dir}/${f}`] = body;
  }
  repo = await makeRepo(files);
  dirs = await makeDirs();
  srv = await spawnServer(dirs, { env: { IOCMNG_PREFIX: "MT" } });
}, 120_000);

afterAll(async () => {
  await srv?.kill();
  await dirs?.remove();
  await repo?.remove();
});

describe("/metrics", () => {
  test("parses before any plugin, with the CA, PVWS, plugin and REST families", async () => {
    const m = await scrape();
    for (const name of [
      "iocmng_ca_circuits",
      "iocmng_ca_channels",
      "iocmng_ca_subscriptions",
      "iocmng_ca_updates_sent_total",
      "iocmng_ca_updates_coalesced_total",
      "iocmng_ca_searches_answered_total",
      "iocmng_ca_circuits_refused_total",
      "iocmng_pvws_clients",
      "iocmng_pva_connections",
      "iocmng_pva_updates_sent_total",
      "iocmng_plugin_cycle_period_seconds",
      "iocmng_plugin_cycle_lateness_seconds",
      "iocmng_plugin_cycle_duration_seconds",
      "iocmng_process_resident_memory_bytes",
      "iocmng_http_requests_total",
    ]) {
      expect(m.has(name)).toBe(true);
    }
    expect(m.get("iocmng_ca_updates_sent_total")?.type).toBe("counter");
    expect(m.get("iocmng_plugin_cycle_period_seconds")?.type).toBe("histogram");
    expect(sample(m, "iocmng_process_resident_memory_bytes")).toBeGreaterThan(1e6);
  });

  test("counters move with plugins, CA clients and REST", async () => {
    const before = await scrape();
    for (const [name, path, kind] of [
      ["counter", "counter", "tasks"],
      ["trig", "trig", "tasks"],
      ["failing", "failing", "tasks"],
      ["diag", "diag", "jobs"],
    ] as const) {
      const r = await srv.api("POST", `/${kind}`, { name, git_url: repo.url, path });
      expect(r.status).toBe(201);
    }
    expect((await srv.api("POST", "/jobs/diag/run")).status).toBe(200);

    // A real CA client: searches, a monitor for a while, a triggered RUN with completion; and a
    // scrape from inside the client while its circuit is open.
    const url = `http://127.0.0.1:${srv.httpPort}/metrics`;
    const run = await py(
      `
import urllib.request
seen = []
p = epics.PV("MT:COUNTER:CYCLE_COUNT", callback=lambda **kw: seen.append(kw["value"]))
p.wait_for_connection(timeout=10)
t0 = time.time()
while len(seen) < 5 and time.time() - t0 < 20:
    time.sleep(0.05)
put("MT:TRIG:RUN", 1, wait=True)
text = urllib.request.urlopen("${url}").read().decode()
circuits = [l for l in text.splitlines() if l.startswith("iocmng_ca_circuits ")]
out({"updates": len(seen), "circuits": circuits})
`,
      srv.caEnv,
    );
    expect(run.code).toBe(0);
    const r = run.result as { updates: number; circuits: string[] };
    expect(r.updates).toBeGreaterThanOrEqual(5);
    expect(Number(r.circuits[0]?.split(" ")[1])).toBeGreaterThanOrEqual(1);

    // A pvAccess client too (the server's own port, from its log line).
    const pvaPort = Number(
      /"tcpPort":(\d+),"udpPort":\d+,"msg":"pvAccess server on/.exec(srv.output())?.[1],
    );
    const pva = await PvaClient.connect(pvaPort);
    await pva.get("MT:COUNTER:SETPOINT");
    const during = await scrape();
    expect(sample(during, "iocmng_pva_connections")).toBeGreaterThanOrEqual(1);
    expect(sample(during, "iocmng_pva_channels")).toBeGreaterThanOrEqual(1);
    pva.close();

    const restart = await srv.api("POST", "/tasks/counter/restart");
    expect(restart.status).toBe(200);

    const after = await waitFor(
      "the failing task to log errors and the counter to cycle",
      async () => {
        const m = await scrape();
        const ok =
          (sample(m, "iocmng_plugin_errors_total", { plugin: "failing" }) ?? 0) > 0 &&
          (sample(m, "iocmng_plugin_cycle_period_seconds", { plugin: "counter" }) ?? 0) > 2;
        return ok ? m : undefined;
      },
    );
    const grew = (name: string) => expect(total(after, name)).toBeGreaterThan(total(before, name));
    grew("iocmng_ca_requests_total");
    grew("iocmng_ca_updates_sent_total");
    grew("iocmng_ca_search_datagrams_total");
    grew("iocmng_ca_searches_answered_total");
    grew("iocmng_ca_sent_bytes_total");
    grew("iocmng_pva_messages_total");
    grew("iocmng_pva_sent_bytes_total");
    expect(sample(after, "iocmng_plugin_cycles_total", { plugin: "counter" })).toBeGreaterThan(0);
    expect(sample(after, "iocmng_plugin_status", { plugin: "failing", status: "ERROR" })).toBe(1);
    expect(sample(after, "iocmng_plugin_up", { plugin: "diag", kind: "job" })).toBe(1);
    expect(sample(after, "iocmng_plugin_cycle_duration_seconds", { plugin: "trig" })).toBe(1);
    expect(sample(after, "iocmng_plugin_restarts_total", { plugin: "counter" })).toBe(1);
    expect(
      sample(after, "iocmng_http_requests_total", {
        method: "POST",
        route: "/api/v1/tasks",
        status: "201",
      }),
    ).toBe(3);
    expect(
      sample(after, "iocmng_http_requests_total", {
        method: "POST",
        route: "/api/v1/jobs/:name/run",
        status: "200",
      }),
    ).toBe(1);
    // The client has gone: no circuit left.
    expect(sample(after, "iocmng_ca_circuits")).toBe(0);
  }, 120_000);
});
