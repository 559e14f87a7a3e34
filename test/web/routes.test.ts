/**
 * The console's REST routes on their own: /console/plugins and /plugins/{name}/logs (+ stream).
 * A job's kept results are the 2.7.9 job history (test/compat).
 */
import { expect, test } from "bun:test";
import { Elysia } from "elysia";
import type { PluginInfo } from "../../src/api/models.ts";
import { AddProgress } from "../../src/plugins/progress.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { LogRings } from "../../src/web/logring.ts";
import { MAX_PROGRESS_STREAMS } from "../../src/web/progress-route.ts";
import { consoleRoutes } from "../../src/web/routes.ts";

const job: PluginInfo = {
  name: "diag",
  kind: "job",
  status: "IDLE",
  message: "",
  prefix: "T:DIAG",
  git_url: "https://user:tok@example.invalid/repo.git",
  parameters: { secret: "x" },
  running: true,
  pvs: [],
};

function build() {
  const logs = new LogRings(3);
  const api = new Elysia({ prefix: "/api/v1" }).use(
    consoleRoutes({
      plugins: { list: (k) => (k === "job" ? [job] : []) },
      logs,
      source: new PvRegistry(),
    }),
  );
  const app = new Elysia().use(api);
  const get = (p: string) => app.handle(new Request(`http://localhost/api/v1${p}`));
  return { app, logs, get };
}

test("/console/plugins lists with errors and last error, without parameters or URL credentials", async () => {
  const { logs, get } = build();
  logs.push("diag", "error", "disk full");
  logs.push("diag", "info", "fine again");
  const body = (await (await get("/console/plugins")).json()) as {
    plugins: Array<Record<string, unknown>>;
    resources: { rssBytes: number };
  };
  expect(body.plugins.length).toBe(1);
  const p = body.plugins[0]!;
  expect(p.errors).toBe(1);
  expect((p.lastError as { msg: string }).msg).toBe("disk full");
  expect(p.parameters).toBeUndefined();
  expect(p.git_url).toBe("https://***@example.invalid/repo.git");
  expect(body.resources.rssBytes).toBeGreaterThan(0);
});

test("logs: the ring, `after`, 404 for an unknown plugin, bad query refused", async () => {
  const { logs, get } = build();
  for (const m of ["a", "b", "c", "d"]) logs.push("diag", "info", m);
  const all = (await (await get("/plugins/diag/logs")).json()) as {
    lines: Array<{ seq: number; msg: string }>;
  };
  expect(all.lines.map((l) => l.msg)).toEqual(["b", "c", "d"]);
  const after = (await (await get(`/plugins/diag/logs?after=${all.lines[1]!.seq}`)).json()) as {
    lines: Array<{ msg: string }>;
  };
  expect(after.lines.map((l) => l.msg)).toEqual(["d"]);
  expect((await get("/plugins/nope/logs")).status).toBe(404);
  expect((await get("/plugins/diag/logs?after=-1")).status).toBe(422);
  expect((await get("/plugins/..%2F..%2Fetc/logs")).status).not.toBe(200);
});

test("logs/stream sends the ring then live lines as server-sent events", async () => {
  const { logs, get } = build();
  logs.push("diag", "info", "before");
  const res = await get("/plugins/diag/logs/stream");
  expect(res.headers.get("content-type")).toContain("text/event-stream");
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = "";
  const until = async (s: string) => {
    while (!text.includes(s)) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended");
      text += dec.decode(value);
    }
  };
  await until('"before"');
  logs.push("other", "info", "not for this stream");
  logs.push("diag", "warn", "live line");
  await until('"live line"');
  expect(text).not.toContain("not for this stream");
  expect(text).toMatch(/^id: \d+\nevent: log\ndata: \{/);
  await reader.cancel();
});

test("progress streams are bounded; a cancelled one frees its slot; a bad name is refused", async () => {
  const progress = new AddProgress();
  const api = new Elysia({ prefix: "/api/v1" }).use(
    consoleRoutes({
      plugins: { list: () => [], progress },
      logs: new LogRings(3),
      source: new PvRegistry(),
    }),
  );
  const get = (p: string) => api.handle(new Request(`http://localhost/api/v1${p}`));
  const open: Response[] = [];
  for (let i = 0; i < MAX_PROGRESS_STREAMS; i++) open.push(await get(`/plugins/p${i}/progress`));
  expect(open.every((r) => r.status === 200)).toBe(true);
  expect((await get("/plugins/one-more/progress")).status).toBe(503);
  await open.pop()?.body?.cancel();
  const again = await get("/plugins/one-more/progress");
  expect(again.status).toBe(200);
  // An add's events reach its stream, and `done` ends it.
  progress.begin("one-more");
  progress.step("one-more", { step: "clone", ok: true, message: "cloned" });
  progress.end("one-more", { ok: false, failedStep: "path", message: "path: no such", steps: [] });
  const text = await again.text();
  expect(text).toContain('event: step\ndata: {"type":"step","step":"clone"');
  expect(text).toContain('"failedStep":"path"');
  for (const r of open) await r.body?.cancel();
  expect((await get("/plugins/..%2Fx/progress")).status).not.toBe(200);
});
