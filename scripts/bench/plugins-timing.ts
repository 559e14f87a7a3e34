#!/usr/bin/env bun
/**
 * Timing of continuous tasks: 50 tasks at a 10 ms interval. Each task records when execute()
 * starts (performance.now() of its own worker). Fixed rate without overlap means cycle j is due at
 * due_j = max(due_{j-1} + interval, start_{j-1}) (a late cycle is not followed by a burst of
 * catch-up cycles); lateness_j = start_j − due_j. execute() here is empty, so start ≈ end.
 * Target: p99 < 2 ms.
 * Usage: bun scripts/bench/plugins-timing.ts [tasks=50] [seconds=5] [interval_ms=10]
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchServer, hostLine, pluginRepo, quantile, summary } from "./plugins-common.ts";

const TASKS = Number(process.argv[2] ?? 50);
const SECONDS = Number(process.argv[3] ?? 5);
const INTERVAL_MS = Number(process.argv[4] ?? 10);

const TASK = {
  "tick.ts": `import { TaskBase } from "iocmng";
export default class Tick extends TaskBase {
  private starts: number[] = [];
  initialize() {}
  execute() {
    this.starts.push(performance.now());
  }
  async cleanup() {
    await Bun.write(String(this.parameters.out), JSON.stringify(this.starts));
  }
}
`,
  "config.yaml": `parameters:\n  mode: continuous\n  interval: ${INTERVAL_MS / 1000}\n`,
};

const outDir = await mkdtemp(join(tmpdir(), "iocmng-bench-timing-"));
const bs = await benchServer();
const repo = await pluginRepo(TASK);
const late: number[] = [];
const periods: number[] = [];
let skipped = 0;
let cycles = 0;
try {
  for (let i = 0; i < TASKS; i++) {
    const r = await bs.post("/tasks", {
      name: `tick${i}`,
      git_url: repo.url,
      parameters: { out: join(outDir, `tick${i}.json`) },
    });
    if (r.status !== 201) throw new Error(`add failed: ${JSON.stringify(r.body)}`);
  }
  await Bun.sleep(SECONDS * 1000);
  await bs.srv.controller.shutdown(); // cleanup() of every task writes its start times
  for (let i = 0; i < TASKS; i++) {
    const starts = JSON.parse(await readFile(join(outDir, `tick${i}.json`), "utf8")) as number[];
    // Skip the first second: tasks added later load while earlier ones already run.
    const from = starts.findIndex((t) => t - (starts[0] ?? 0) > 1000);
    const s = from < 0 ? [] : starts.slice(from);
    const t0 = s[0];
    if (t0 === undefined) continue;
    let due = t0;
    for (let j = 1; j < s.length; j++) {
      const prev = s[j - 1] as number;
      const t = s[j] as number;
      due = Math.max(due + INTERVAL_MS, prev);
      if (t - due >= INTERVAL_MS) skipped += Math.floor((t - due) / INTERVAL_MS);
      late.push(Math.max(0, t - due));
      periods.push(t - prev);
      cycles++;
    }
  }
} finally {
  await bs.close();
  await repo.remove();
  await rm(outDir, { recursive: true, force: true });
}
console.log(hostLine());
console.log(
  `${TASKS} continuous tasks × ${INTERVAL_MS} ms for ${SECONDS} s: ${cycles} cycles measured, ${skipped} whole intervals missed`,
);
console.log(`lateness (start − due): ${summary(late)}  (target p99 < 2 ms)`);
console.log(
  `period: ${summary(periods)}  (ideal ${INTERVAL_MS} ms; p1 ${quantile(periods, 0.01).toFixed(2)} ms)`,
);
