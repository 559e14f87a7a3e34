#!/usr/bin/env bun
/**
 * Add latency: from `POST /api/v1/tasks` (local file:// repo, no dependencies) to the task's PVs
 * being served over Channel Access (a libca client — pyepics — connects to its STATUS PV).
 * Target: p50 < 300 ms. Usage: bun scripts/bench/plugins-add.ts [iterations=20]
 */
import { benchServer, hostLine, pluginRepo, summary } from "./plugins-common.ts";

const N = Number(process.argv[2] ?? 20);
const TASK = {
  "t.ts": `import { TaskBase } from "iocmng";
export default class T extends TaskBase { initialize() {} execute() {} cleanup() {} }
`,
  "config.yaml":
    "parameters:\n  mode: triggered\npvs:\n  inputs:\n    SP:\n      type: float\n      value: 1\n",
};

const bs = await benchServer();
const repo = await pluginRepo(TASK);
// One long-lived libca client: reads a PV name per line, answers when it has connected.
const client = Bun.spawn(
  [
    "/usr/bin/python3",
    "-u",
    "-c",
    `import sys, epics
for line in sys.stdin:
    p = epics.PV(line.strip())
    ok = p.wait_for_connection(timeout=30)
    print("ok" if ok else "fail", flush=True)
`,
  ],
  { env: { PATH: process.env.PATH ?? "", ...bs.caEnv }, stdin: "pipe", stdout: "pipe" },
);
const reader = client.stdout.getReader();
let pending = "";
async function nextLine(): Promise<string> {
  for (;;) {
    const nl = pending.indexOf("\n");
    if (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      return line;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error("CA client exited");
    pending += new TextDecoder().decode(value);
  }
}

const postMs: number[] = [];
const totalMs: number[] = [];
const removeMs: number[] = [];
try {
  for (let i = 0; i < N + 2; i++) {
    const name = `add${i}`;
    const t0 = performance.now();
    const r = await bs.post("/tasks", { name, git_url: repo.url });
    const t1 = performance.now();
    if (r.status !== 201) throw new Error(`add failed: ${JSON.stringify(r.body)}`);
    client.stdin.write(`BENCH:${name.toUpperCase()}:STATUS\n`);
    client.stdin.flush();
    if ((await nextLine()) !== "ok") throw new Error(`PV of ${name} not reachable over CA`);
    const t2 = performance.now();
    const d0 = performance.now();
    const del = await fetch(`${bs.base}/tasks/${name}`, { method: "DELETE" });
    if (del.status !== 200) throw new Error(`delete failed: ${await del.text()}`);
    const d1 = performance.now();
    // The first two are warm-up (JIT, first clone of the repo's objects into the page cache).
    if (i >= 2) {
      postMs.push(t1 - t0);
      totalMs.push(t2 - t0);
      removeMs.push(d1 - d0);
    }
  }
} finally {
  client.kill();
  await bs.close();
  await repo.remove();
}
console.log(hostLine());
console.log(`POST /tasks → 201:                 ${summary(postMs)}`);
console.log(`POST /tasks → PV connected via CA:  ${summary(totalMs)}  (target p50 < 300 ms)`);
console.log(`DELETE /tasks/{name}:               ${summary(removeMs)}`);
