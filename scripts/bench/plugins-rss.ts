#!/usr/bin/env bun
/**
 * Memory with 100 loaded tasks: RSS of the server process and of every plugin process (each
 * plugin runs in an OS process of its own), and the proportional set size (PSS: shared pages
 * such as the executable's code counted once across processes) — PSS is what they really cost.
 * Usage: bun scripts/bench/plugins-rss.ts [tasks=100]
 */
import { readdirSync, readFileSync } from "node:fs";
import { benchServer, hostLine, pluginRepo } from "./plugins-common.ts";

/** [rss, pss] in bytes of every plugin process of this server (cmdline carries `"parent":<pid>`). */
function pluginProcesses(): { n: number; rss: number; pss: number } {
  let n = 0;
  let rss = 0;
  let pss = 0;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (!readFileSync(`/proc/${d}/cmdline`, "latin1").includes(`"parent":${process.pid}`))
        continue;
      const roll = readFileSync(`/proc/${d}/smaps_rollup`, "utf8");
      rss += Number(/^Rss:\s+(\d+)/m.exec(roll)?.[1] ?? 0) * 1024;
      pss += Number(/^Pss:\s+(\d+)/m.exec(roll)?.[1] ?? 0) * 1024;
      n++;
    } catch {
      // Gone meanwhile.
    }
  }
  return { n, rss, pss };
}

const TASKS = Number(process.argv[2] ?? 100);
const TASK = {
  "idle.ts": `import { TaskBase } from "iocmng";
export default class Idle extends TaskBase {
  initialize() {}
  execute() { this.setPv("VALUE", Math.random()); }
  cleanup() {}
}
`,
  "config.yaml":
    "parameters:\n  mode: continuous\n  interval: 1\npvs:\n  inputs:\n    SP:\n      type: float\n      value: 1\n  outputs:\n    VALUE:\n      type: float\n      value: 0\n",
};

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
function settle(): Promise<void> {
  Bun.gc(true);
  return Bun.sleep(500);
}

const bs = await benchServer();
const repo = await pluginRepo(TASK);
try {
  await settle();
  const base = process.memoryUsage().rss;
  const t0 = performance.now();
  for (let i = 0; i < TASKS; i++) {
    const r = await bs.post("/tasks", { name: `idle${i}`, git_url: repo.url });
    if (r.status !== 201) throw new Error(`add ${i} failed: ${JSON.stringify(r.body)}`);
  }
  const addS = (performance.now() - t0) / 1000;
  await Bun.sleep(2000);
  await settle();
  const loaded = process.memoryUsage().rss;
  const procs = pluginProcesses();
  console.log(hostLine());
  console.log(`RSS idle server:            ${mb(base)} MiB`);
  console.log(
    `RSS of the server with ${TASKS} tasks:  ${mb(loaded)} MiB  (+${mb((loaded - base) / TASKS)} MiB per task)`,
  );
  console.log(
    `${procs.n} plugin processes: RSS ${mb(procs.rss)} MiB (${mb(procs.rss / procs.n)} MiB each), PSS ${mb(procs.pss)} MiB (${mb(procs.pss / procs.n)} MiB each)`,
  );
  console.log(
    `PVs served: ${bs.srv.registry.size}; adding ${TASKS} tasks took ${addS.toFixed(1)} s`,
  );
} finally {
  await bs.close();
  await repo.remove();
}
