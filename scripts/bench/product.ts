#!/usr/bin/env bun
/**
 * CA performance through the product path, side by side with EPICS softIoc in one run.
 *
 *   bun scripts/bench/product.ts [rounds=3]
 *
 * iocmng is started as a user starts it (`dist/iocmng serve` when `bun run build` made it, else
 * `bun src/main.ts serve`; the first line says which) with a fresh state dir on loopback ports.
 * Over REST it gets a plugin from a git repository this script creates that makes 10,000 double
 * PVs with `addPv` (one plugin may make 10,000 PVs of its own, besides the default PVs the server
 * makes for it), and a plugin that updates 1,000 PVs at 10 Hz through `setPv`. Then, `rounds` times, each side is restarted (iocmng restores its plugins at
 * boot) and measured with the same libca client (scripts/bench/product-client.c):
 *   (a) the first connect + get storm of the 10,000 doubles, as soon as the server is ready
 *       (iocmng: /health answers, which it does only once the plugins are restored; softIoc: iocInit
 *       done): the storm an IOC meets when every client reconnects after a restart;
 *   (b) warm storms (median of 5 more); for (a) and (b) also the server process's own CPU (its
 *       threads: search, JIT compiler, GC; not the plugins), a far less noisy sign of JIT warm-up
 *       than wall time on a shared machine;
 *   (c) get round trip p50/p99 of one PV (2,000 sequential);
 *   (d) monitor fan-out: 5 clients subscribed to the 1,000 updating PVs, CPU-s of the server *and
 *       its plugin processes* per million updates delivered;
 *   (e) RSS and PSS (smaps_rollup) of the server plus its plugin processes, clients gone.
 * (c)–(e) are measured in the first round only. Sides alternate which goes first per round.
 * PRODUCT_AB_WARMUP=1 adds a third side each round, iocmng with IOCMNG_CA_WARMUP=0, to show what
 * the CA warm-up at boot (src/ca/server/warmup.ts) does to the first storm.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { buildCaClient, median, runCaClient } from "./ca-client.ts";
import {
  addProductPlugins,
  cpuBetween,
  DOUBLES,
  iocmngCommand,
  iocmngInstall,
  type Side,
  SOFTIOC,
  softIocDb,
  startIocmng,
  startSoftIoc,
  treeCpu,
  treeMemory,
  UPDATING,
} from "./product-sides.ts";

const ROUNDS = Number(process.argv[2] ?? 3);
const FANOUT_CLIENTS = 5;
const AB = process.env.PRODUCT_AB_WARMUP === "1";

const work = mkdtempSync(join(tmpdir(), "iocmng-product-bench-"));
const CLIENT = join(work, "product-client");

const stormNames = Array.from({ length: DOUBLES }, (_, i) => `BENCH:BIG:D${i}`);
const updatingNames = Array.from({ length: UPDATING }, (_, i) => `BENCH:UPD:U${i}`);
const STORM_FILE = join(work, "storm.txt");
const UPD_FILE = join(work, "updating.txt");
writeFileSync(STORM_FILE, `${stormNames.join("\n")}\n`);
writeFileSync(UPD_FILE, `${updatingNames.join("\n")}\n`);

async function client(port: number, ...args: string[]): Promise<string> {
  return runCaClient(CLIENT, port, args);
}

async function storm(port: number): Promise<number> {
  const out = await client(port, "connect", STORM_FILE, "_");
  return Number(/: ([\d.]+) s/.exec(out)?.[1]);
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** What one side measured. */
interface Figures {
  readyMs: number[];
  first: number[];
  warm: number[];
  /** Server process CPU seconds in the first storm / per warm storm (10 ms ticks). */
  firstCpu: number[];
  warmCpu: number[];
  p50: number[];
  p99: number[];
  fanout: number[];
  mem: ReturnType<typeof treeMemory> | null;
}
const fresh = (): Figures => ({
  readyMs: [],
  first: [],
  warm: [],
  firstCpu: [],
  warmCpu: [],
  p50: [],
  p99: [],
  fanout: [],
  mem: null,
});

async function latency(s: Side, f: Figures): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const m = /p50 ([\d.]+) us, p99 ([\d.]+) us/.exec(
      await client(s.caPort, "latency", stormNames[0] as string, "2000"),
    );
    f.p50.push(Number(m?.[1]));
    f.p99.push(Number(m?.[2]));
    if (process.env.PRODUCT_LATENCY_AB === "1" && s.name === "iocmng") await pausedLatency(s);
  }
}

/**
 * PRODUCT_LATENCY_AB=1: after each get run on iocmng, one more with the updater paused (its
 * ENABLE PV set to 0 over CA, back to 1 after), to show what its 10 Hz batches cost the gets.
 */
async function pausedLatency(s: Side): Promise<void> {
  const caput = join(dirname(SOFTIOC), "caput");
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(s.caPort),
  };
  const put = (v: string) =>
    Bun.spawnSync([caput, "-t", "BENCH:UPD:ENABLE", v], { env }).exitCode === 0;
  if (!put("0")) throw new Error("caput BENCH:UPD:ENABLE 0 failed");
  await Bun.sleep(300);
  const out = await client(s.caPort, "latency", stormNames[0] as string, "2000");
  put("1");
  console.log(`  iocmng gets with the updater paused: ${out}`);
}

/** 5 clients on the 1,000 updating PVs for 8 s; CPU of the whole process tree over 5 s inside. */
async function fanout(s: Side, f: Figures): Promise<void> {
  const secs = 8;
  const runs = Array.from({ length: FANOUT_CLIENTS }, () =>
    client(s.caPort, "monitor", UPD_FILE, String(secs)),
  );
  await Bun.sleep(2500);
  const c0 = treeCpu(s.pid);
  const t0 = performance.now();
  await Bun.sleep(5000);
  const cpu = cpuBetween(c0, treeCpu(s.pid));
  const dt = (performance.now() - t0) / 1000;
  const outs = await Promise.all(runs);
  let rate = 0;
  for (const o of outs) {
    const m = /updates (\d+) in ([\d.]+) s/.exec(o);
    rate += Number(m?.[1]) / Number(m?.[2]);
  }
  f.fanout.push((cpu / (rate * dt)) * 1e6);
  console.log(
    `  ${s.name} fan-out: ${rate.toFixed(0)} updates/s delivered to ${FANOUT_CLIENTS} clients, CPU ${cpu.toFixed(2)} s over ${dt.toFixed(1)} s (load ${load()})`,
  );
}

/** CPU seconds of the server process alone (its threads: search, JIT, GC), not its plugins. */
function serverCpu(pid: number): number {
  return treeCpu(pid).get(pid) ?? 0;
}

async function measure(s: Side, f: Figures, full: boolean): Promise<void> {
  f.readyMs.push(s.readyMs);
  const c0 = serverCpu(s.pid);
  f.first.push(await storm(s.caPort));
  const c1 = serverCpu(s.pid);
  f.firstCpu.push(c1 - c0);
  const warm: number[] = [];
  for (let i = 0; i < 5; i++) warm.push(await storm(s.caPort));
  f.warm.push(median(warm));
  f.warmCpu.push((serverCpu(s.pid) - c1) / 5);
  console.log(
    `  ${s.name}: ready ${s.readyMs.toFixed(0)} ms, first storm ${f.first.at(-1)?.toFixed(4)} s (server CPU ${((c1 - c0) * 1000).toFixed(0)} ms), warm ${warm.map((w) => w.toFixed(4)).join(" ")} s (server CPU ${((f.warmCpu.at(-1) ?? 0) * 1000).toFixed(0)} ms each) (load ${load()})`,
  );
  const w = /\{[^\n]*"CA hot paths warmed up"[^\n]*\}/.exec(s.log())?.[0];
  if (w) {
    const r = JSON.parse(w) as { rounds: number; wallMs: number; busyMs: number };
    console.log(
      `  ${s.name} CA warm-up at boot: ${r.rounds} rounds, main-thread busy ${r.busyMs.toFixed(0)} ms over ${r.wallMs.toFixed(0)} ms`,
    );
  }
  if (!full) return;
  await latency(s, f);
  await fanout(s, f);
  await Bun.sleep(2000);
  f.mem = treeMemory(s.pid);
}

/** Adds the plugins over REST to a first start of iocmng, then stops it. */
async function install(argv: string[]): Promise<Awaited<ReturnType<typeof iocmngInstall>>> {
  const inst = await iocmngInstall(work, "BENCH");
  const s = await startIocmng(inst, argv);
  try {
    for (const [name, n] of await addProductPlugins(inst.base)) {
      console.log(`  added ${name} over REST: ${n} PVs`);
    }
  } finally {
    await s.stop();
  }
  return inst;
}

const ms = (xs: number[]) => xs.map((x) => x * 1000);

function ratio(a: number[], b: number[]): string {
  return b.length === 0 ? "—" : `${(median(a) / median(b)).toFixed(2)}×`;
}

function report(ours: Figures, ref: Figures): void {
  const mb = (b: number | undefined) => ((b ?? 0) / 1048576).toFixed(0);
  const list = (xs: number[], d = 3) => xs.map((x) => x.toFixed(d)).join(" ");
  const row = (what: string, a: number[], b: number[], d = 3) =>
    console.log(
      `${what.padEnd(34)} iocmng ${list(a, d)} | softIoc ${list(b, d)} | ratio of medians ${ratio(a, b)}`,
    );
  console.log(`\nSummary (load ${load()}):`);
  row("ready after spawn (ms)", ours.readyMs, ref.readyMs, 0);
  row("(a) first storm after start (s)", ours.first, ref.first, 4);
  row("(a) server CPU, first storm (ms)", ms(ours.firstCpu), ms(ref.firstCpu), 0);
  row("(b) warm storm, median of 5 (s)", ours.warm, ref.warm, 4);
  row("(b) server CPU per warm storm (ms)", ms(ours.warmCpu), ms(ref.warmCpu), 0);
  row("(c) get p50 (µs)", ours.p50, ref.p50, 1);
  row("(c) get p99 (µs)", ours.p99, ref.p99, 1);
  row("(d) fan-out CPU-s per M updates", ours.fanout, ref.fanout, 2);
  const om = ours.mem;
  const rm = ref.mem;
  if (om && rm) {
    console.log(
      `(e) memory, 11,000 PVs, idle after the clients: iocmng ${om.procs} processes RSS ${mb(om.rss)} MB (server ${mb(om.serverRss)}), PSS ${mb(om.pss)} MB (server ${mb(om.serverPss)}) | softIoc RSS ${mb(rm.rss)} MB, PSS ${mb(rm.pss)} MB | ratio RSS ${(om.rss / rm.rss).toFixed(2)}×, PSS ${(om.pss / rm.pss).toFixed(2)}×`,
    );
  }
}

async function main(): Promise<void> {
  buildCaClient(CLIENT, "product-client.c");
  const { argv, what } = iocmngCommand();
  console.log(`product-path CA benchmark, ${new Date().toISOString()}, Bun ${Bun.version}`);
  console.log(
    `iocmng: ${what}${process.env.IOCMNG_CA_WARMUP ? `, IOCMNG_CA_WARMUP=${process.env.IOCMNG_CA_WARMUP}` : ""}; softIoc: ${SOFTIOC}; load ${load()}`,
  );
  const inst = await install(argv);
  const dbFile = join(work, "bench.db");
  writeFileSync(dbFile, softIocDb(stormNames, updatingNames));
  const ours = fresh();
  const ref = fresh();
  const noWarm = fresh();
  for (let r = 0; r < ROUNDS; r++) {
    console.log(`round ${r + 1}/${ROUNDS}`);
    const sides = AB ? ["iocmng", "softIoc", "iocmng-nowarmup"] : ["iocmng", "softIoc"];
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const which of order) {
      const s =
        which === "softIoc"
          ? await startSoftIoc(dbFile)
          : which === "iocmng"
            ? await startIocmng(inst, argv)
            : await startIocmng(inst, argv, { IOCMNG_CA_WARMUP: "0" }, which);
      try {
        const f = which === "softIoc" ? ref : which === "iocmng" ? ours : noWarm;
        await measure(s, f, r === 0 && which !== "iocmng-nowarmup");
      } finally {
        await s.stop();
      }
    }
  }
  report(ours, ref);
  if (AB) {
    const list = (xs: number[]) => xs.map((x) => x.toFixed(4)).join(" ");
    console.log(
      `A/B: first storm without the CA warm-up (IOCMNG_CA_WARMUP=0): ${list(noWarm.first)} s (ratio to softIoc ${ratio(noWarm.first, ref.first)}), server CPU ${ms(
        noWarm.firstCpu,
      )
        .map((x) => x.toFixed(0))
        .join(
          " ",
        )} ms; warm ${list(noWarm.warm)} s; ready ${noWarm.readyMs.map((m) => m.toFixed(0)).join(" ")} ms`,
    );
  }
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
