#!/usr/bin/env bun
/**
 * Add latency with the compiled executable (what is deployed): `dist/iocmng serve` on loopback,
 * then `POST /api/v1/tasks` → 201 (clone, checks, plugin process start, import, PVs, initialize())
 * and `DELETE`, N times after 2 warm-ups. Build first: `bun run build`.
 * Usage: bun scripts/bench/plugins-add-binary.ts [iterations=10] [steps]
 * `steps`: the server logs at debug level and the median time of each pipeline step is printed
 * (where an add's time goes).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort, freeUdpPort } from "../../test/e2e/lib/server.ts";
import { BINARY } from "../build.ts";
import { hostLine, pluginRepo, summary } from "./plugins-common.ts";

const N = Number(process.argv[2] ?? 10);
const STEPS = process.argv[3] === "steps";
const root = await mkdtemp(join(tmpdir(), "iocmng-bench-bin-"));
const port = freeTcpPort();
const proc = Bun.spawn([BINARY, "serve"], {
  env: {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(port),
    IOCMNG_STATE_DIR: join(root, "state"),
    IOCMNG_PLUGINS_DIR: join(root, "plugins"),
    IOCMNG_LOG_LEVEL: STEPS ? "debug" : "warn",
    EPICS_CAS_SERVER_PORT: String(await freeUdpPort()),
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
  },
  stdout: STEPS ? "pipe" : "ignore",
  stderr: "ignore",
});
const logText = STEPS ? new Response(proc.stdout as ReadableStream).text() : Promise.resolve("");
const base = `http://127.0.0.1:${port}/api/v1`;
const repo = await pluginRepo({
  "t.ts": `import { TaskBase } from "iocmng";
export default class T extends TaskBase { initialize() {} execute() {} cleanup() {} }
`,
  "config.yaml": "parameters:\n  mode: triggered\n",
});
const post: number[] = [];
const del: number[] = [];
try {
  for (let i = 0; i < 300; i++) {
    if (
      await fetch(`${base}/tasks`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await Bun.sleep(100);
  }
  for (let i = 0; i < N + 2; i++) {
    const t0 = performance.now();
    const r = await fetch(`${base}/tasks`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `b${i}`, git_url: repo.url }),
    });
    const t1 = performance.now();
    if (r.status !== 201) throw new Error(`add failed: ${await r.text()}`);
    const d = await fetch(`${base}/tasks/b${i}`, { method: "DELETE" });
    const t2 = performance.now();
    if (d.status !== 200) throw new Error(`delete failed: ${await d.text()}`);
    if (i >= 2) {
      post.push(t1 - t0);
      del.push(t2 - t1);
    }
  }
} finally {
  proc.kill("SIGTERM");
  await proc.exited;
  await repo.remove();
  await rm(root, { recursive: true, force: true });
}
console.log(hostLine());
console.log(`dist/iocmng: POST /tasks → 201:  ${summary(post)}  (target p50 < 300 ms)`);
console.log(`dist/iocmng: DELETE /tasks/{name}: ${summary(del)}`);
if (STEPS) {
  const byStep = new Map<string, number[]>();
  for (const line of (await logText).split("\n")) {
    if (!line.includes('"step done"')) continue;
    const { step, ms } = JSON.parse(line) as { step: string; ms: number };
    byStep.set(step, [...(byStep.get(step) ?? []), ms]);
  }
  for (const [step, ms] of byStep) console.log(`  step ${step.padEnd(12)} ${summary(ms)}`);
}
