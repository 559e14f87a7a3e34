/**
 * CA server benchmarks with the C load client scripts/bench/product-client.c (linked against
 * Debian's libca; the same client product.ts runs against iocmng and softIoc), and our write-path client
 * (scripts/bench/caputget.c, also on libca). Run: `bun scripts/bench/ca-server.ts
 * [connect|latency|fanout|maxrate|memory|putget|burst|subput|clearput ...]` (default: all).
 * putget, burst, subput and clearput run
 * against softIoc too when EPICS Base is built at $EPICS_BASE (default /work/ref/epics-base). Each server runs in its own process
 * (scripts/bench/ca-server-proc.ts) so its CPU can be read from /proc/<pid>/stat (utime+stime).
 * Prints one line per figure. Keep runs short: the machine may be shared.
 */

import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ALLOCATOR_ENV } from "../../src/common/allocator.ts";
import { buildCaClient, median, runCaClient } from "./ca-client.ts";
import { cpuSeconds, rssMb } from "./procfs.ts";

// Built per run (the source may change between runs; it compiles in well under a second).
const work = mkdtempSync(join(tmpdir(), "ca-bench-"));
const CLIENT = join(work, "product-client");

interface ServerProc {
  pid: number;
  port: number;
  cmd(line: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

const CAPUTGET = process.env.CAPUTGET ?? "/tmp/caputget";
const SOFTIOC = join(process.env.EPICS_BASE ?? "/work/ref/epics-base", "bin/linux-x86_64/softIoc");

function buildClient(): void {
  buildCaClient(CLIENT, "product-client.c");
  if (!existsSync(CAPUTGET)) buildCaClient(CAPUTGET, "caputget.c");
}

async function startServer(count: number): Promise<ServerProc> {
  // CA_BENCH_PROF=<dir> profiles the server process (bun --cpu-prof) for the whole run.
  const prof = process.env.CA_BENCH_PROF;
  const bunArgs = prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [];
  const proc = Bun.spawn(["bun", ...bunArgs, "scripts/bench/ca-server-proc.ts", String(count)], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
    // The allocator settings `iocmng serve` runs with (src/common/allocator.ts), unless set here.
    env: { ...ALLOCATOR_ENV, ...process.env },
  });
  const reader = proc.stdout.getReader();
  let buf = "";
  const lines: string[] = [];
  const waiter: { wake: (() => void) | null } = { wake: null };
  (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
      waiter.wake?.();
    }
  })();
  const nextLine = async (): Promise<string> => {
    while (lines.length === 0)
      await new Promise<void>((r) => {
        waiter.wake = r;
      });
    return lines.shift() as string;
  };
  const ready = await nextLine();
  const port = Number(ready.split(" ")[1]);
  return {
    pid: proc.pid,
    port,
    async cmd(line) {
      proc.stdin.write(`${line}\n`);
      proc.stdin.flush();
      return JSON.parse(await nextLine());
    },
    async stop() {
      proc.stdin.end(); // the server exits when stdin closes (lets --cpu-prof write its profile)
      const t = setTimeout(() => proc.kill(), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/**
 * The load client on `count` PVs named `${prefix}0…` (the bench server's names), or in latency
 * mode on the one PV `prefix`. The client reads names from a file, so the file is written once
 * per name set.
 */
async function cabench(port: number, mode: string, prefix: string, count: string, secs?: string) {
  if (mode === "latency") return runCaClient(CLIENT, port, [mode, prefix, count]);
  const file = join(work, `${prefix.replace(/\W/g, "_")}-${count}.txt`);
  if (!existsSync(file)) {
    const names = Array.from({ length: Number(count) }, (_, i) => `${prefix}${i}`);
    writeFileSync(file, `${names.join("\n")}\n`);
  }
  return runCaClient(CLIENT, port, [mode, file, secs ?? "_"]);
}

/** Updates per second from the client's monitor line ("updates U in S s"). */
function updateRate(out: string): number {
  const m = /updates (\d+) in ([\d.]+) s/.exec(out);
  return Number(m?.[1]) / Number(m?.[2]);
}

/**
 * Connect storm on one fresh server: the first runs show JIT warm-up (with
 * BUN_JSC_reportCompileTimes=1 the server compiles ~45 ms of code during run 1, ~28 ms in run 2,
 * ~7 ms in run 3, then next to nothing), so they are reported apart from the steady state an IOC
 * that runs for months is in: runs 1–3, then the median of runs 4–12.
 */
async function benchConnect(): Promise<void> {
  const s = await startServer(10_000);
  // softIoc with the same 10,000 names, the same client, alternated run by run (it was a constant
  // from an older client before: a reference measured with another client is no reference).
  const ioc = await startSoftIoc(Array.from({ length: 10_000 }, (_, i) => `BENCH:D${i}`));
  const runs = async (port: number) =>
    Number(
      /connect\+get \d+: ([\d.]+) s/.exec(await cabench(port, "connect", "BENCH:D", "10000"))?.[1],
    );
  const totals: number[] = [];
  const ref: number[] = [];
  for (let i = 0; i < 12; i++) {
    totals.push(await runs(s.port));
    if (ioc) ref.push(await runs(ioc.port));
  }
  const warm = totals.slice(3);
  const refWarm = ref.slice(3);
  const vs = ioc
    ? `  [softIoc, same client, alternated: warm median ${median(refWarm).toFixed(3)} s, best ${Math.min(...refWarm).toFixed(3)} s; ratio of medians ${(median(warm) / median(refWarm)).toFixed(2)}x]`
    : "  [softIoc not built]";
  console.log(
    `connect+get 10,000 doubles, one client: runs 1-3 (JIT warm-up) ${totals
      .slice(0, 3)
      .map((t) => t.toFixed(3))
      .join(
        " ",
      )} s; warm median ${median(warm).toFixed(3)} s, best ${Math.min(...warm).toFixed(3)} s (runs 4-12)${vs}`,
  );
  await s.stop();
  await ioc?.stop();
}

async function benchLatency(): Promise<void> {
  const s = await startServer(10);
  const p50s: number[] = [];
  const p99s: number[] = [];
  for (let i = 0; i < 3; i++) {
    const out = await cabench(s.port, "latency", "BENCH:LAT", "2000");
    const m = /p50 ([\d.]+) us, p99 ([\d.]+) us/.exec(out);
    p50s.push(Number(m?.[1]));
    p99s.push(Number(m?.[2]));
  }
  console.log(
    `get round trip, 2,000 sequential: p50 ${median(p50s).toFixed(1)} µs, p99 ${median(p99s).toFixed(1)} µs (median of 3 runs)  [softIoc 91/142 µs]`,
  );
  await s.stop();
}

async function benchFanout(): Promise<void> {
  const n = 1000;
  const clients = 5;
  const secs = 10;
  const s = await startServer(n);
  await s.cmd(`update ${n} 10`);
  const runs = Array.from({ length: clients }, () =>
    cabench(s.port, "monitor", "BENCH:D", String(n), String(secs)),
  );
  // Clients connect and settle (1 s in the client); measure a window inside their run.
  await Bun.sleep(3000);
  const c0 = cpuSeconds(s.pid);
  const st0 = await s.cmd("stats");
  const t0 = performance.now();
  await Bun.sleep(6000);
  const c1 = cpuSeconds(s.pid);
  const st1 = await s.cmd("stats");
  const dt = (performance.now() - t0) / 1000;
  const outs = await Promise.all(runs);
  const rates = outs.map(updateRate);
  const delivered = (st1.updatesSent ?? 0) - (st0.updatesSent ?? 0);
  const cpu = c1 - c0;
  console.log(
    `fan-out ${n} PVs @10 Hz to ${clients} clients: ${(delivered / dt).toFixed(0)} updates/s sent, clients saw ${rates.map((r) => r.toFixed(0)).join("/")} /s; server CPU ${cpu.toFixed(2)} s over ${dt.toFixed(1)} s = ${((cpu / delivered) * 1e6).toFixed(2)} CPU-s per million updates; coalesced ${(st1.updatesCoalesced ?? 0) - (st0.updatesCoalesced ?? 0)}  [softIoc 1.55]`,
  );
  await s.stop();
}

async function benchMaxRate(): Promise<void> {
  const n = 1000;
  const s = await startServer(n);
  const run = cabench(s.port, "monitor", "BENCH:D", String(n), "6");
  await Bun.sleep(1500);
  await s.cmd(`flood ${n}`);
  await Bun.sleep(1500);
  const st0 = await s.cmd("stats");
  const c0 = cpuSeconds(s.pid);
  const t0 = performance.now();
  await Bun.sleep(3000);
  const st1 = await s.cmd("stats");
  const c1 = cpuSeconds(s.pid);
  const dt = (performance.now() - t0) / 1000;
  await s.cmd("flood 0");
  const out = await run;
  const sent = ((st1.updatesSent ?? 0) - (st0.updatesSent ?? 0)) / dt;
  const coalesced = ((st1.updatesCoalesced ?? 0) - (st0.updatesCoalesced ?? 0)) / dt;
  console.log(
    `max rate to one client (1,000 PVs posted in a tight loop): sent ${sent.toFixed(0)} updates/s, coalesced ${coalesced.toFixed(0)}/s, server CPU ${((c1 - c0) / dt).toFixed(2)} cores; client: ${out}`,
  );
  await s.stop();
}

async function benchMemory(): Promise<void> {
  const n = 11_000;
  const s = await startServer(n);
  await s.cmd("gc");
  await Bun.sleep(500);
  const idle = rssMb(s.pid);
  const run = cabench(s.port, "monitor", "BENCH:D", String(n), "3");
  await Bun.sleep(2500);
  const busy = rssMb(s.pid);
  await run;
  console.log(
    `RSS serving ${n.toLocaleString("en")} scalar PVs: ${idle.toFixed(0)} MB idle, ${busy.toFixed(0)} MB with one client connected and subscribed to all  [softIoc 87 MB]`,
  );
  await s.stop();
}

/** softIoc serving `ao` records (default BENCH:IN) on a free loopback port, when EPICS Base is built. */
async function startSoftIoc(names: string[] = ["BENCH:IN"]): Promise<{
  pid: number;
  port: number;
  stop(): Promise<void>;
} | null> {
  if (!existsSync(SOFTIOC)) return null;
  const dir = mkdtempSync(join(tmpdir(), "bench-ioc-"));
  writeFileSync(join(dir, "in.db"), names.map((n) => `record(ao, "${n}") {}\n`).join(""));
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  const ioc = Bun.spawn([SOFTIOC, "-S", "-d", join(dir, "in.db")], {
    env: {
      ...process.env,
      EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_CAS_SERVER_PORT: String(port),
      EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
      EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  await Bun.sleep(1000);
  return {
    pid: ioc.pid,
    port,
    async stop() {
      ioc.kill();
      await ioc.exited;
    },
  };
}

/**
 * Sequential put + get round trips on a plugin-like input PV (its write handler answers one event
 * loop turn later, as a Worker's answer does): every get must see its put.
 */
async function benchPutGet(): Promise<void> {
  const s = await startServer(1);
  const ours = await runCaClient(CAPUTGET, s.port, ["putget", "BENCH:IN", "2000"]);
  await s.stop();
  const ioc = await startSoftIoc();
  const ref = ioc
    ? await runCaClient(CAPUTGET, ioc.port, ["putget", "BENCH:IN", "2000"])
    : "not built";
  await ioc?.stop();
  console.log(`put+get round trip, plugin input PV: iocmng ${ours}  [softIoc ao: ${ref}]`);
}

/**
 * 10,000 puts back to back to one plugin-like input PV, then a get: time, final value, refusals.
 * Three bursts on one server: the first meets a server whose write path JSC has not compiled yet.
 */
async function benchBurst(): Promise<void> {
  const three = async (port: number) => {
    const runs: string[] = [];
    for (let i = 0; i < 3; i++) {
      runs.push(await runCaClient(CAPUTGET, port, ["burst", "BENCH:IN", "10000"]));
    }
    return runs.map((r) => r.replace(/^burst 10000: /, "")).join(" | ");
  };
  const s = await startServer(1);
  const ours = await three(s.port);
  await s.stop();
  const ioc = await startSoftIoc();
  const ref = ioc ? await three(ioc.port) : "not built";
  await ioc?.stop();
  console.log(`10,000-write burst, 3 on one server: iocmng ${ours}  [softIoc ao: ${ref}]`);
}

/**
 * acctst's write-traffic steps in isolation (caputget.c `subput` / `clearput`, 400 rounds: round i
 * subscribes DBR_GR_FLOAT, gets, puts i values, cancels or clears), on iocmng's plugin-like input
 * then softIoc's `ao`: client wall time and server CPU of each.
 */
async function benchTraffic(mode: "subput" | "clearput"): Promise<void> {
  const rounds = process.env.CA_BENCH_ROUNDS ?? "400";
  const s = await startServer(1);
  const c0 = cpuSeconds(s.pid);
  const ours = await runCaClient(CAPUTGET, s.port, [mode, "BENCH:IN", rounds]);
  const cpu = cpuSeconds(s.pid) - c0;
  await s.stop();
  const ioc = await startSoftIoc();
  let ref = "not built";
  if (ioc) {
    const r0 = cpuSeconds(ioc.pid);
    ref = await runCaClient(CAPUTGET, ioc.port, [mode, "BENCH:IN", rounds]);
    ref += `, server CPU ${(cpuSeconds(ioc.pid) - r0).toFixed(2)} s`;
    await ioc.stop();
  }
  console.log(`${mode}: iocmng ${ours}, server CPU ${cpu.toFixed(2)} s  [softIoc ao: ${ref}]`);
}

const all: Record<string, () => Promise<void>> = {
  connect: benchConnect,
  latency: benchLatency,
  fanout: benchFanout,
  maxrate: benchMaxRate,
  memory: benchMemory,
  putget: benchPutGet,
  burst: benchBurst,
  subput: () => benchTraffic("subput"),
  clearput: () => benchTraffic("clearput"),
};
buildClient();
const which = process.argv.slice(2);
console.log(`CA server benchmarks, ${new Date().toISOString()}, Bun ${Bun.version}`);
for (const name of which.length > 0 ? which : Object.keys(all)) {
  const f = all[name];
  if (!f) throw new Error(`unknown benchmark ${name}; choose from ${Object.keys(all).join(", ")}`);
  await f();
}
rmSync(work, { recursive: true, force: true });
