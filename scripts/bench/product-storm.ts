#!/usr/bin/env bun
/**
 * Where a warm connect storm's server CPU goes, per thread: the product path's plugins (two making
 * 5,000 doubles each, an updater setting 1,000 PVs at 10 Hz, as ca-p99.ts), one storm to warm up,
 * then STORMS storms (connect + get of the 10,000 doubles, scripts/bench/product-client.c), each
 * bracketed by readings of /proc/<pid>/task/<tid>/schedstat (run time in ns, unlike the 10 ms
 * ticks of /proc/<pid>/stat; but a thread that ended meanwhile is missing from them, as softIoc's
 * per-circuit CAS-client thread may be once its client left: the process line, from
 * /proc/<pid>/stat, counts it). Threads are grouped by name (`comm`); the idle CPU of an equal time
 * without a storm is measured the same way and printed beside it, so what a storm adds is seen
 * apart from what the server does anyway (the updater's batches, the allocator's purge thread).
 *
 *   bun scripts/bench/product-storm.ts [storms=10] [variant…]
 *
 * Variants as ca-p99.ts: `iocmng`, `softIoc`, `softIoc-nort`, `iocmng+ENV=VALUE[,…]` (`IOCMNG_BIN=<path>` runs
 * another binary, e.g. a copy kept from before a change). Default: `iocmng softIoc`.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { buildCaClient, median, runCaClient } from "./ca-client.ts";
import { cpuSeconds } from "./procfs.ts";
import {
  installSplit,
  iocmngCommand,
  loadText,
  type Side,
  splitBenchFiles,
  startVariant,
} from "./product-sides.ts";

const args = process.argv.slice(2);
const STORMS = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 10;
const VARIANTS = args.length > 0 ? args : ["iocmng", "softIoc"];

const { work, client: CLIENT, stormFile: STORM_FILE, dbFile } = splitBenchFiles("iocmng-storm-");
const load = loadText;

/** Run time (ns) of each thread of `pid`, summed by thread name. */
function threadTimes(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      // Numbered pools (e.g. Heap Helper / JITWorker instances) share one row.
      const key = name.replace(/\d+$/, "#");
      out.set(key, (out.get(key) ?? 0) + ns);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

function diff(a: Map<string, number>, b: Map<string, number>): Map<string, number> {
  const d = new Map<string, number>();
  for (const [k, v] of b) d.set(k, v - (a.get(k) ?? 0));
  return d;
}

async function measure(s: Side, label: string): Promise<void> {
  await Bun.sleep(2000);
  // The first storm after the start (what the boot's warm-up prepares for), then the warm ones.
  const f0 = threadTimes(s.pid);
  const fp0 = cpuSeconds(s.pid);
  const first = await runCaClient(CLIENT, s.caPort, ["connect", STORM_FILE, "_"]);
  let firstMs = 0;
  for (const v of diff(f0, threadTimes(s.pid)).values()) firstMs += v / 1e6;
  const firstProc = (cpuSeconds(s.pid) - fp0) * 1000;
  const per = new Map<string, number[]>();
  const idle = new Map<string, number[]>();
  const walls: number[] = [];
  const connects: number[] = [];
  const getsPhase: number[] = [];
  let procCpu = 0;
  for (let i = 0; i < STORMS; i++) {
    const p0 = cpuSeconds(s.pid);
    const t0 = threadTimes(s.pid);
    const w0 = performance.now();
    const out = await runCaClient(CLIENT, s.caPort, ["connect", STORM_FILE, "_"]);
    const wall = performance.now() - w0;
    const t1 = threadTimes(s.pid);
    const pd = cpuSeconds(s.pid) - p0;
    procCpu += pd;
    let live = 0;
    for (const v of diff(t0, t1).values()) live += v / 1e6;
    if (process.env.STORM_VERBOSE) {
      const top = [...diff(t0, t1)]
        .filter(([, v]) => v >= 5e5)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${(v / 1e6).toFixed(1)}`)
        .join(", ");
      console.log(
        `    storm ${i}: ${out}; threads ${live.toFixed(1)} ms (${top}), process ${(pd * 1000).toFixed(0)} ms`,
      );
    }
    walls.push(Number(/: ([\d.]+) s/.exec(out)?.[1]));
    const phases = /connect ([\d.]+) s, get ([\d.]+) s/.exec(out);
    connects.push(Number(phases?.[1]));
    getsPhase.push(Number(phases?.[2]));
    for (const [k, v] of diff(t0, t1)) per.set(k, [...(per.get(k) ?? []), v / 1e6]);
    // The same span of time with no client: what the server spends anyway.
    await Bun.sleep(wall);
    for (const [k, v] of diff(t1, threadTimes(s.pid)))
      idle.set(k, [...(idle.get(k) ?? []), v / 1e6]);
  }
  const rows = [...per.entries()]
    .map(([k, v]) => [k, median(v), median(idle.get(k) ?? [0])] as const)
    .filter(([, a, b]) => a >= 0.05 || b >= 0.05)
    .sort((x, y) => y[1] - x[1]);
  const sum = (i: 1 | 2) => rows.reduce((t, r) => t + r[i], 0);
  console.log(
    `${label} first storm: ${first}, server threads ${firstMs.toFixed(1)} ms, process ${firstProc.toFixed(0)} ms`,
  );
  console.log(
    `${label} pid ${s.pid}: storm median ${median(walls).toFixed(4)} s (${walls.map((w) => w.toFixed(4)).join(" ")}; connect phase ${median(connects).toFixed(4)} s, get phase ${median(getsPhase).toFixed(4)} s), load ${load()}`,
  );
  console.log(
    `  ${"thread".padEnd(22)} storm ms  idle ms (medians per storm / per equal idle span)`,
  );
  for (const [k, a, b] of rows)
    console.log(`  ${k.padEnd(22)} ${a.toFixed(2).padStart(8)} ${b.toFixed(2).padStart(8)}`);
  console.log(
    `  ${"sum of medians".padEnd(22)} ${sum(1).toFixed(2).padStart(8)} ${sum(2).toFixed(2).padStart(8)}`,
  );
  // The process's own account (exited threads included; 10 ms units, so a mean over the storms).
  console.log(
    `  process CPU per storm (/proc/<pid>/stat, mean): ${((procCpu / STORMS) * 1000).toFixed(1)} ms`,
  );
}

async function main(): Promise<void> {
  buildCaClient(CLIENT, "product-client.c");
  const { argv, what } = iocmngCommand();
  console.log(`warm storm per thread, ${new Date().toISOString()}, Bun ${Bun.version}`);
  console.log(`iocmng: ${what}; variants ${VARIANTS.join(", ")}; ${STORMS} storms; load ${load()}`);
  const inst = await installSplit(work, argv);
  for (const v of VARIANTS) {
    const s = await startVariant(v, inst, argv, dbFile);
    try {
      await measure(s, v);
    } finally {
      await s.stop();
    }
  }
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
