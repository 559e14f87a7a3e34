#!/usr/bin/env bun
/**
 * Memory of the product path alone (figure (e) of product.ts, with a breakdown): iocmng with the
 * same plugins added over REST (10,000 doubles in one plugin, 1,000 updated at 10 Hz by a second),
 * restarted `rounds` times; each time, 4 s after /health answers, the PSS of the server
 * and of each plugin process (the spare included) from /proc/<pid>/smaps, split into what is the
 * process's own (anonymous: JS heap, malloc, JIT code) and what is mapped from files (the
 * executable, shared between processes, so its PSS is a fraction of its RSS). Then the total every
 * 5 s from 10 to 40 s after ready, its mean, and the mean of the server's anonymous memory over the
 * same readings (what a server-side change moves, without the plugins' GC swings).
 *
 *   bun scripts/bench/product-memory.ts [rounds=3] [binary ...]
 *
 * With several binaries (e.g. dist/iocmng and a copy of an older build) the rounds alternate them
 * in one invocation, so a before/after comparison sees the same machine load. Without any, the
 * binary product.ts would run (dist/iocmng, or `bun src/main.ts`).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  addProductPlugins,
  cpuBetween,
  iocmngCommand,
  iocmngInstall,
  processTree,
  startIocmng,
  treeCpu,
} from "./product-sides.ts";

const ROUNDS = Number(process.argv[2] ?? 3);
const BINARIES = process.argv.slice(3);

interface Mem {
  pss: number;
  anon: number;
  file: number;
}

/** PSS (KiB) of one process: total, anonymous (its own), file-backed (mostly the executable). */
function processMemory(pid: number): Mem | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  } catch {
    return null;
  }
  const m: Mem = { pss: 0, anon: 0, file: 0 };
  let isFile = false;
  for (const line of text.split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      // inode ≠ 0: a file mapping (the executable, libc…); [heap], [stack], anonymous: inode 0.
      isFile = head[1] !== "0";
      continue;
    }
    const pss = /^Pss:\s+(\d+)/.exec(line);
    if (!pss) continue;
    const kb = Number(pss[1]);
    m.pss += kb;
    if (isFile) m.file += kb;
    else m.anon += kb;
  }
  return m;
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
};
const mb = (kb: number) => (kb / 1024).toFixed(1);
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

const work = mkdtempSync(join(tmpdir(), "iocmng-product-mem-"));
try {
  // A side is `binary` or `binary+VAR=value+…` (extra environment of the server).
  const sides = BINARIES.length > 0 ? BINARIES : [iocmngCommand().argv.join(" ")];
  // A binary given relative to here (dist/iocmng) is found from the server's own directory.
  const argvOf = (side: string) => {
    const argv = (side.split("+")[0] as string).split(" ");
    if (BINARIES.length === 0) return argv;
    const bin = argv[0] as string;
    return [bin.includes("/") ? resolve(bin) : bin, ...argv.slice(1), "serve"];
  };
  const envOf = (side: string) =>
    Object.fromEntries(
      side
        .split("+")
        .slice(1)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
  console.log(`product-path memory, ${new Date().toISOString()}, load ${load()}`);
  const inst = await iocmngInstall(work, "BENCH");
  const first = await startIocmng(inst, argvOf(sides[0] as string));
  try {
    await addProductPlugins(inst.base);
  } finally {
    await first.stop();
  }
  const totals = new Map<string, number[]>();
  const steady = new Map<string, number[]>();
  const serverSteady = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const side of r % 2 === 0 ? sides : [...sides].reverse()) {
      const s = await startIocmng(inst, argvOf(side), envOf(side));
      try {
        await Bun.sleep(2000);
        // CPU over the next 2 s (the updater's setPv work, GC): a knob that saves memory must not cost it.
        const c0 = treeCpu(s.pid);
        await Bun.sleep(2000);
        const c1 = treeCpu(s.pid);
        const cpu = { server: (c1.get(s.pid) ?? 0) - (c0.get(s.pid) ?? 0), plugins: 0 };
        cpu.plugins = cpuBetween(c0, c1) - cpu.server;
        const parts: string[] = [];
        let sum = 0;
        for (const pid of processTree(s.pid)) {
          const m = processMemory(pid);
          if (!m) continue;
          sum += m.pss;
          parts.push(`${comm(pid)} ${mb(m.pss)} (anon ${mb(m.anon)}, file ${mb(m.file)})`);
        }
        const key = side;
        totals.set(key, [...(totals.get(key) ?? []), sum]);
        console.log(
          `${key}: PSS ${mb(sum)} MB = ${parts.join(" + ")}; ready ${s.readyMs.toFixed(0)} ms; CPU in 2 s: server ${cpu.server.toFixed(2)} s, plugins ${cpu.plugins.toFixed(2)} s; load ${load()}`,
        );
        // Later: the total again every 5 s up to 40 s after ready. The plugins' and the server's
        // own collections catch up within ~10-20 s, so an early reading alone flatters a knob
        // that only collects sooner.
        const later: string[] = [];
        const laterSums: number[] = [];
        let serverAnon = 0;
        for (let t = 10; t <= 40; t += 5) {
          await Bun.sleep(5000);
          let tot = 0;
          for (const pid of processTree(s.pid)) {
            const m = processMemory(pid);
            tot += m?.pss ?? 0;
            if (pid === s.pid) serverAnon += m?.anon ?? 0;
          }
          later.push(mb(tot));
          laterSums.push(tot);
        }
        const mean = laterSums.reduce((a, b) => a + b, 0) / laterSums.length;
        steady.set(key, [...(steady.get(key) ?? []), mean]);
        // The server's own (anonymous) memory over the same readings: what a server-side change
        // moves, without the plugin processes' GC swings in the total.
        const anonMean = serverAnon / laterSums.length;
        serverSteady.set(key, [...(serverSteady.get(key) ?? []), anonMean]);
        console.log(
          `${key}: total PSS at 10, 15 … 40 s: ${later.join(" ")} MB (mean ${mb(mean)}; server anon mean ${mb(anonMean)})`,
        );
        // PRODUCT_MEM_HOLD=<s>: time to look at /proc/<pid>/smaps by hand before the stop.
        const hold = Number(process.env.PRODUCT_MEM_HOLD ?? 0);
        if (hold > 0) {
          console.log(`holding ${hold} s: pids ${processTree(s.pid).join(" ")}`);
          await Bun.sleep(hold * 1000);
        }
      } finally {
        await s.stop();
      }
    }
  }
  for (const [k, v] of steady)
    console.log(`${k}: mean total PSS 10-40 s ${v.map(mb).join(", ")} MB`);
  for (const [k, v] of totals) console.log(`${k}: total PSS ${v.map(mb).join(", ")} MB`);
  for (const [k, v] of serverSteady)
    console.log(`${k}: server anonymous, mean 10-40 s ${v.map(mb).join(", ")} MB`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
