/**
 * Figures for the configuration and persistence layer: config.yaml parse time, atomic write
 * latency (with fsync), registry updates and autosave coalescing. Short on purpose (shared
 * machine). Run: bun scripts/bench/config-state.ts
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { parsePluginConfig } from "../../src/plugins/config.ts";
import { atomicWriteFile, StateStore } from "../../src/state/index.ts";

const SEED = `parameters: {mode: continuous, interval: 1.0, threshold: 75.0}
pvs:
  inputs:
    SETPOINT: {type: float, value: 50.0, unit: "%", prec: 2, low: 0, high: 100}
  outputs:
    READING: {type: float, value: 0.0, unit: arb, prec: 3}
    ALARM: {type: bool, value: 0, znam: OK, onam: ALARM}
`;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

function fmt(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : `${ms.toFixed(2)} ms`;
}

async function timeEach(n: number, fn: (i: number) => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

const big = `pvs:\n  outputs:\n${Array.from(
  { length: 500 },
  (_, i) => `    PV${i}: {type: float, prec: 2, unit: mm, alarm: {high: 10, hihi: 20}}\n`,
).join("")}`;

const seedT = await timeEach(2000, () => parsePluginConfig(SEED, "c.yaml", "task"));
const bigT = await timeEach(50, () => parsePluginConfig(big, "c.yaml", "task"));
console.log(
  `parsePluginConfig seed example (3 PVs): p50 ${fmt(pct(seedT, 50))}, p99 ${fmt(pct(seedT, 99))}`,
);
console.log(
  `parsePluginConfig 500 PVs (${big.length} bytes): p50 ${fmt(pct(bigT, 50))}, p99 ${fmt(pct(bigT, 99))}`,
);

const dir = await mkdtemp(join(tmpdir(), "iocmng-bench-"));
try {
  const payload = "x".repeat(10_000);
  const w = await timeEach(200, () => atomicWriteFile(join(dir, "f.json"), payload));
  console.log(
    `atomicWriteFile 10 kB (tmp+fsync+rename+dir fsync): p50 ${fmt(pct(w, 50))}, p99 ${fmt(pct(w, 99))} (${tmpdir()})`,
  );

  const store = new StateStore(join(dir, "state"), pino({ level: "silent" }));
  await store.load();
  const put = await timeEach(100, (i) =>
    store.putPlugin({
      name: `plugin-${i}`,
      kind: "task",
      git_url: `file:///repos/plugin-${i}`,
      parameters: { threshold: i },
      auto_start: true,
      cloneDir: `/data/plugins/plugin-${i}`,
      addedAt: new Date().toISOString(),
    }),
  );
  console.log(
    `StateStore.putPlugin, registry growing to 100 plugins: p50 ${fmt(pct(put, 50))}, p99 ${fmt(pct(put, 99))}`,
  );

  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) store.saveAutosave(`plugin-${i % 10}`, `PV${i % 50}`, i * 0.5);
  const tSave = performance.now() - t0;
  const t1 = performance.now();
  await store.flush();
  const tFlush = performance.now() - t1;
  console.log(
    `saveAutosave: ${n} calls over 10 plugins × 50 PVs in ${fmt(tSave)} (${((tSave * 1e6) / n).toFixed(0)} ns/call), coalesced into 10 files written by flush() in ${fmt(tFlush)}`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log("(shared 2-core machine with other jobs running: treat as indicative)");
