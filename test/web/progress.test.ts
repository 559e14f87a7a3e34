/**
 * Live add progress (GET /api/v1/plugins/{name}/progress, Server-Sent Events) and each plugin
 * process' resource use (GET /api/v1/console/plugins, /metrics), against a spawned server with
 * real plugins from a git repository the test creates. The slow plugin's initialize() waits for a
 * gate file, so the steps before `start` are seen while its add is still in flight.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FAILING, GATED_TASK as SLOW } from "../e2e/lib/plugins.ts";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "../e2e/lib/server.ts";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { parseMetrics, sample } from "../helpers/prom.ts";

interface Ev {
  event: string;
  data: { type: string; step?: string; ok: boolean; message: string; failedStep?: string };
}

let dirs: ServerDirs;
let srv: SpawnedServer;
let repo: TestRepo;

beforeAll(async () => {
  const files: Record<string, string> = {};
  const plugins = { slow: SLOW, boom: FAILING.import?.files ?? {} };
  for (const [dir, plugin] of Object.entries(plugins)) {
    for (const [f, body] of Object.entries(plugin)) files[`${dir}/${f}`] = body;
  }
  repo = await makeRepo(files);
  dirs = await makeDirs();
  srv = await spawnServer(dirs, { env: { IOCMNG_PREFIX: "PG" } });
});

afterAll(async () => {
  await srv?.kill();
  await repo?.remove();
  await rm(dirs.root, { recursive: true, force: true });
});

/** Reads an SSE stream into `events` until it ends; resolves then. */
async function collect(res: Response, events: Ev[]): Promise<void> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event !== undefined && data !== undefined) {
        events.push({ event, data: JSON.parse(data) as Ev["data"] });
      }
    }
  }
}

test("an add's steps stream while it runs, then its outcome; the stream ends", async () => {
  const gate = join(dirs.root, "gate");
  const events: Ev[] = [];
  // The stream is opened before the add begins: it waits for it.
  const res = await fetch(`${srv.base}/plugins/slow/progress`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const ended = collect(res, events);
  let answered = false;
  const add = srv
    .api("POST", "/tasks", { name: "slow", git_url: repo.url, path: "slow", parameters: { gate } })
    .finally(() => {
      answered = true;
    });
  // Every step before `start` is seen while initialize() waits for the gate.
  await waitFor(
    "the pvs step",
    () => (events.some((e) => e.data.step === "pvs") ? true : undefined),
    60_000,
  );
  expect(answered).toBe(false);
  const early = events.map((e) => e.data.step);
  expect(early).toContain("clone");
  expect(early).toContain("config");
  expect(early).not.toContain("start");
  expect(events.every((e) => e.event === "step" && e.data.ok)).toBe(true);
  // A stream opened during the add first gets the steps so far, then the rest.
  const late: Ev[] = [];
  const lateEnded = collect(await fetch(`${srv.base}/plugins/SLOW/progress`), late);
  await waitFor("the replay", () => (late.length >= early.length ? true : undefined));
  expect(late.slice(0, early.length).map((e) => e.data.step)).toEqual(early);
  await writeFile(gate, "go");
  const r = await add;
  expect(r.status).toBe(201);
  await ended;
  const last = events.at(-1);
  expect(last?.event).toBe("done");
  expect(last?.data.ok).toBe(true);
  // The streamed steps are the add's report, in order.
  const steps = (r.body.validation as { steps: Array<{ step: string }> }).steps.map((s) => s.step);
  expect(events.slice(0, -1).map((e) => e.data.step)).toEqual(steps);
  await lateEnded;
  expect(late.map((e) => e.event)).toEqual(events.map((e) => e.event));
}, 120_000);

test("a refused add streams its failing step and message", async () => {
  const events: Ev[] = [];
  const res = await fetch(`${srv.base}/plugins/boom/progress`);
  const ended = collect(res, events);
  const r = await srv.api("POST", "/tasks", { name: "boom", git_url: repo.url, path: "boom" });
  expect(r.status).toBe(422);
  await ended;
  const failed = events.find((e) => e.event === "step" && !e.data.ok);
  expect(failed?.data.step).toBe("import");
  expect(failed?.data.message).toContain("boom at import time");
  const done = events.at(-1);
  expect(done?.event).toBe("done");
  expect(done?.data.ok).toBe(false);
  expect(done?.data.failedStep).toBe("import");
  // Nothing was loaded, and a bad name is refused rather than streamed.
  expect((await fetch(`${srv.base}/plugins/..%2Fx/progress`)).status).not.toBe(200);
}, 120_000);

test("each plugin process' RSS and CPU time, in the console list and /metrics", async () => {
  type Listed = { name: string; process?: { pid: number; rssBytes: number; cpuSeconds: number } };
  const listed = await waitFor(
    "slow with its process",
    async () => {
      const body = (await srv.api("GET", "/console/plugins")).body as { plugins: Listed[] };
      const p = body.plugins.find((x) => x.name === "slow");
      return p?.process && p.process.cpuSeconds > 0 ? p.process : undefined;
    },
    30_000,
  );
  expect(listed.rssBytes).toBeGreaterThan(1024 * 1024);
  // The pid is the plugin's own process: a child of the server, named after the plugin (also when
  // it started as the spare process, whose command line says "spare").
  const stat = readFileSync(`/proc/${listed.pid}/stat`, "utf8");
  const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  expect(ppid).toBe(srv.proc.pid);
  expect(listed.pid).not.toBe(srv.proc.pid);
  expect(readFileSync(`/proc/${listed.pid}/comm`, "utf8").trim()).toBe("slow");

  const text = await (await fetch(`http://127.0.0.1:${srv.httpPort}/metrics`)).text();
  const m = parseMetrics(text);
  expect(m.get("iocmng_plugin_resident_memory_bytes")?.type).toBe("gauge");
  expect(m.get("iocmng_plugin_cpu_seconds_total")?.type).toBe("counter");
  expect(sample(m, "iocmng_plugin_resident_memory_bytes", { plugin: "slow" })).toBeGreaterThan(
    1024 * 1024,
  );
  expect(sample(m, "iocmng_plugin_cpu_seconds_total", { plugin: "slow" })).toBeGreaterThan(0);
  // The refused plugin has no process and no series.
  expect(sample(m, "iocmng_plugin_resident_memory_bytes", { plugin: "boom" })).toBeUndefined();
}, 120_000);
