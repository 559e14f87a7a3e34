#!/usr/bin/env bun
/**
 * Memory: RSS of the server process (main thread + every plugin worker) with 100 loaded tasks.
 * Usage: bun scripts/bench/plugins-rss.ts [tasks=100]
 */
import { benchServer, hostLine, pluginRepo } from "./plugins-common.ts";

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
  console.log(hostLine());
  console.log(`RSS idle server:            ${mb(base)} MiB`);
  console.log(
    `RSS with ${TASKS} tasks loaded:  ${mb(loaded)} MiB  (+${mb((loaded - base) / TASKS)} MiB per task)`,
  );
  console.log(
    `PVs served: ${bs.srv.registry.size}; adding ${TASKS} tasks took ${addS.toFixed(1)} s`,
  );
} finally {
  await bs.close();
  await repo.remove();
}
