#!/usr/bin/env bun
/**
 * The get round-trip tail (p99) and the warm storm through the product path, variants of the
 * iocmng server alternated with softIoc in one invocation (the figures of scripts/bench/product.ts
 * (b) and (c), without its first-storm, fan-out and memory parts, so that many alternations fit in
 * a few minutes on a shared machine).
 *
 *   bun scripts/bench/ca-p99.ts [rounds=3] [variant…]
 *
 * Variants: `iocmng` (as a user starts it), `softIoc`, `softIoc-nort` (softIoc without the
 * real-time priorities it takes as root: NO_RT in product-sides.ts), and `iocmng+ENV=VALUE[,ENV=VALUE]` for an
 * iocmng started with extra environment (e.g. `iocmng+IOCMNG_DISABLE_PVA=1`; `IOCMNG_BIN=<path>` runs
 * another binary, e.g. a copy of dist/iocmng kept from before a change). Default: `iocmng
 * softIoc`. Each round restarts each variant (order alternating), waits 2 s for the boot work to
 * settle, then runs 3 × 2,000 sequential gets of one PV and 5 warm storms (connect + get of 10,000
 * PVs), with the server process's CPU per storm. The plugins are those of product.ts: two making
 * 5,000 doubles each and an updater setting 1,000 PVs at 10 Hz, added over REST once.
 *
 * CA_P99_SAMPLES=DIR writes every get's (start ns, round trip ns) per run to DIR, for lining the
 * slow ones up with `strace -f -tt -T -p <pid>` or `perf sched` of the server (its pid is printed).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildCaClient, median, runCaClient } from "./ca-client.ts";
import {
  installSplit,
  iocmngCommand,
  loadText,
  type Side,
  splitBenchFiles,
  splitStormNames,
  startVariant,
  treeCpu,
} from "./product-sides.ts";

const args = process.argv.slice(2);
const ROUNDS = /^\d+$/.test(args[0] ?? "") ? Number(args.shift()) : 3;
const VARIANTS = args.length > 0 ? args : ["iocmng", "softIoc"];
const GETS = 2000;
const SAMPLES_DIR = process.env.CA_P99_SAMPLES;
// CA_P99_LATE=S: S seconds after the storms, 3 more get runs (is the tail a just-started effect?).
const LATE_S = Number(process.env.CA_P99_LATE ?? 0);

const { work, client: CLIENT, stormFile: STORM_FILE, dbFile } = splitBenchFiles("iocmng-ca-p99-");
const load = loadText;

const pct = (sorted: number[], p: number) => sorted[Math.floor(sorted.length * p)] as number;

interface Figures {
  p50: number[];
  p99: number[];
  warm: number[];
  warmCpu: number[];
  lateP99: number[];
}

// CA_P99_CLIENT_FIFO=N runs the get client under `chrt -f N`: libca's own threads are real-time as
// root, but the thread that waits in ca_pend_io is the caller's and ordinary, so on a 2-core host
// it queues behind whatever else is runnable — the server's plugin processes among them. With it,
// the client behaves more like one on another machine (a diagnostic; both sides get it alike).
const CLIENT_FIFO = process.env.CA_P99_CLIENT_FIFO;

async function gets(s: Side, label: string, run: number): Promise<[number, number]> {
  const args = ["samples", splitStormNames[0] as string, `${GETS}`];
  const out = CLIENT_FIFO
    ? await runCaClient("chrt", s.caPort, ["-f", CLIENT_FIFO, CLIENT, ...args])
    : await runCaClient(CLIENT, s.caPort, args);
  if (SAMPLES_DIR) writeFileSync(join(SAMPLES_DIR, `${label}-${run}.txt`), `${out}\n`);
  const us = out
    .split("\n")
    .map((l) => Number(l.split(" ")[1]) / 1000)
    .sort((a, b) => a - b);
  return [pct(us, 0.5), pct(us, 0.99)];
}

async function measure(s: Side, label: string, f: Figures): Promise<void> {
  await Bun.sleep(2000);
  const p50: number[] = [];
  const p99: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [a, b] = await gets(s, label, i);
    p50.push(a);
    p99.push(b);
  }
  const cpu = () => treeCpu(s.pid).get(s.pid) ?? 0;
  // One storm first so that the warm ones are warm (the first after a start compiles).
  await runCaClient(CLIENT, s.caPort, ["connect", STORM_FILE, "_"]);
  const c0 = cpu();
  const warm: number[] = [];
  for (let i = 0; i < 5; i++) {
    const out = await runCaClient(CLIENT, s.caPort, ["connect", STORM_FILE, "_"]);
    warm.push(Number(/: ([\d.]+) s/.exec(out)?.[1]));
  }
  const warmCpu = ((cpu() - c0) / 5) * 1000;
  let late = "";
  if (LATE_S > 0) {
    await Bun.sleep(LATE_S * 1000);
    const l: number[] = [];
    for (let i = 0; i < 3; i++) l.push((await gets(s, `${label}-late`, i))[1]);
    f.lateP99.push(...l);
    late = `; ${LATE_S} s later p99 ${l.map((x) => x.toFixed(0)).join(" ")} µs`;
  }
  f.p50.push(...p50);
  f.p99.push(...p99);
  f.warm.push(median(warm));
  f.warmCpu.push(warmCpu);
  console.log(
    `  ${label.padEnd(28)} pid ${s.pid}: get p50 ${p50.map((x) => x.toFixed(1)).join(" ")} µs, p99 ${p99.map((x) => x.toFixed(0)).join(" ")} µs; warm ${warm.map((x) => x.toFixed(4)).join(" ")} s, server CPU ${warmCpu.toFixed(0)} ms/storm${late} (load ${load()})`,
  );
}

async function main(): Promise<void> {
  buildCaClient(CLIENT, "product-client.c");
  if (SAMPLES_DIR) mkdirSync(SAMPLES_DIR, { recursive: true });
  const { argv, what } = iocmngCommand();
  console.log(`CA get p99 / warm storm, ${new Date().toISOString()}, Bun ${Bun.version}`);
  console.log(`iocmng: ${what}; variants ${VARIANTS.join(", ")}; load ${load()}`);
  const inst = await installSplit(work, argv);
  const figures = new Map<string, Figures>(
    VARIANTS.map((v) => [v, { p50: [], p99: [], warm: [], warmCpu: [], lateP99: [] }]),
  );
  for (let r = 0; r < ROUNDS; r++) {
    console.log(`round ${r + 1}/${ROUNDS}`);
    const order = r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
    for (const v of order) {
      const s = await startVariant(v, inst, argv, dbFile);
      try {
        await measure(s, `${v}-r${r}`, figures.get(v) as Figures);
      } finally {
        await s.stop();
      }
    }
  }
  console.log(`\nSummary, medians over rounds (load ${load()}):`);
  const ref = figures.get("softIoc");
  const noRt = figures.get("softIoc-nort");
  for (const [v, f] of figures) {
    const rel = (a: number[], b: number[] | undefined) =>
      b && b.length > 0 ? ` (${(median(a) / median(b)).toFixed(2)}×)` : "";
    console.log(
      `  ${v.padEnd(28)} get p50 ${median(f.p50).toFixed(1)} µs${rel(f.p50, ref?.p50)}, p99 ${median(f.p99).toFixed(0)} µs${rel(f.p99, ref?.p99)}; warm storm ${median(f.warm).toFixed(4)} s${rel(f.warm, ref?.warm)}, server CPU ${median(f.warmCpu).toFixed(0)} ms${rel(f.warmCpu, ref?.warmCpu)}${noRt && f !== noRt ? ` | vs softIoc-nort: p99 ${rel(f.p99, noRt.p99)}, warm storm ${rel(f.warm, noRt.warm)}` : ""}${f.lateP99.length > 0 ? `; p99 ${LATE_S} s later ${median(f.lateP99).toFixed(0)} µs${rel(f.lateP99, ref?.lateP99)}` : ""}`,
    );
  }
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
