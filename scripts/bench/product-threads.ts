#!/usr/bin/env bun
/**
 * Where the product's CPU goes, per thread: iocmng with the product path's plugins (`big`, 10,000
 * doubles; `upd`, 1,000 PVs set at 10 Hz; added over REST as in product.ts), the CPU of every
 * thread of the server and of its plugin processes from /proc/<pid>/task/<tid>/stat.
 *
 *   bun scripts/bench/product-threads.ts [rounds=2] [binary ...]     (default: dist/iocmng)
 *
 * Per binary and round (binaries alternate): restart with the plugins restored, settle 3 s, then
 *   idle:  two windows of 10 s with no client (the updater running): ms of CPU per second;
 *   storm: 2 warm-up storms, then 8 warm connect + get storms of the 10,000 doubles with
 *          product-client.c on libca: ms of CPU and minor page faults per storm.
 * Threads are named by process (srv, or the plugin's name from its comm) and thread name; the
 * main thread of each process is `main`. 10 ms clock ticks: figures under ~2 ms are coarse.
 * For the server's threads per storm beside softIoc's, with ns precision: product-storm.ts; this
 * one covers the plugin processes too, and compares builds.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { buildCaClient, runCaClient } from "./ca-client.ts";
import { parseStat, statTicks } from "./procfs.ts";
import {
  addProductPlugins,
  DOUBLES,
  iocmngInstall,
  processTree,
  startIocmng,
} from "./product-sides.ts";

const args = process.argv.slice(2);
const ROUNDS = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 2;
const BINARIES = args.length > 0 ? args : [join(import.meta.dir, "..", "..", "dist", "iocmng")];
const work = mkdtempSync(join(tmpdir(), "iocmng-threads-"));
const CLIENT = join(work, "product-client");
const STORM = join(work, "storm.txt");
writeFileSync(
  STORM,
  `${Array.from({ length: DOUBLES }, (_, i) => `BENCH:BIG:D${i}`).join("\n")}\n`,
);

interface Sample {
  ticks: number;
  faults: number;
}

/** CPU ticks and minor faults of every thread of `root` and its descendants, by label. */
function threads(root: number): Map<string, Sample> {
  const out = new Map<string, Sample>();
  for (const pid of processTree(root)) {
    let proc = "srv";
    if (pid !== root) {
      try {
        proc = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {
        continue;
      }
    }
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const { name: comm, fields: f } = parseStat(s);
        const name = tid === String(pid) ? "main" : comm;
        const key = `${proc}:${name}`;
        const o = out.get(key) ?? { ticks: 0, faults: 0 };
        o.ticks += statTicks(f);
        o.faults += Number(f[7]);
        out.set(key, o);
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return out;
}

/** "label ms [faults]" for every thread that used CPU between `a` and `b`, busiest first. */
function report(a: Map<string, Sample>, b: Map<string, Sample>, per: number, faults: boolean) {
  const rows = [...b]
    .map(([k, v]) => {
      const was = a.get(k) ?? { ticks: 0, faults: 0 };
      return { k, ms: ((v.ticks - was.ticks) * 10) / per, flt: (v.faults - was.faults) / per };
    })
    .filter((r) => r.ms > 0)
    .sort((x, y) => y.ms - x.ms);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const parts = rows.map(
    (r) => `${r.k} ${r.ms.toFixed(1)}${faults && r.flt >= 1 ? ` (${r.flt.toFixed(0)} flt)` : ""}`,
  );
  return `total ${total.toFixed(1)}: ${parts.join(", ")}`;
}

const load = () => (loadavg()[0] ?? 0).toFixed(1);

async function round(bin: string): Promise<void> {
  const inst = await iocmngInstall(mkdtempSync(join(work, "i-")), "BENCH");
  const first = await startIocmng(inst, [bin, "serve"]);
  try {
    await addProductPlugins(inst.base);
  } finally {
    await first.stop();
  }
  const s = await startIocmng(inst, [bin, "serve"]);
  try {
    await Bun.sleep(3000);
    for (let w = 0; w < 2; w++) {
      const a = threads(s.pid);
      await Bun.sleep(10_000);
      console.log(`  idle, ms/s: ${report(a, threads(s.pid), 10, false)} (load ${load()})`);
    }
    for (let i = 0; i < 2; i++) await runCaClient(CLIENT, s.caPort, ["connect", STORM, "_"]);
    const a = threads(s.pid);
    const N = 8;
    for (let i = 0; i < N; i++) await runCaClient(CLIENT, s.caPort, ["connect", STORM, "_"]);
    console.log(`  storm, ms/storm: ${report(a, threads(s.pid), N, true)} (load ${load()})`);
  } finally {
    await s.stop();
  }
}

buildCaClient(CLIENT, "product-client.c");
console.log(`product threads, ${new Date().toISOString()}, Bun ${Bun.version}, load ${load()}`);
for (let r = 0; r < ROUNDS; r++) {
  for (const bin of r % 2 === 0 ? BINARIES : [...BINARIES].reverse()) {
    console.log(`${bin} (round ${r + 1}/${ROUNDS})`);
    await round(bin);
  }
}
