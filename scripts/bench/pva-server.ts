/**
 * pvAccess server benchmarks, iocmng vs pvxs's softIocPVX side by side in one run:
 * `bun scripts/bench/pva-server.ts [connect|latency|fanout|memory ...]` (default: all).
 *
 * softIocPVX is not part of the repository: build pvxs (and EPICS Base) outside it and point
 * PVXS_BIN at its bin/linux-x86_64 (default /work/ref/pvxs/bin/linux-x86_64). The clients are pvxs's
 * own `pvxget` for the connect storm (the same binary against both servers), a small C client
 * (pva-get-client.c, built with gcc into /tmp) for the GET round trips, and our test client
 * (test/helpers/pva-client.ts) in this process for the monitor fan-out. Each server runs in its
 * own process; server CPU is utime+stime from /proc/<pid>/stat over the measuring window. Runs are
 * short: the machine is shared.
 *
 * GET round trip knobs: PVA_BENCH_GETS (measured GETs per side, default 2,000; 20,000 for a steadier
 * p99), PVA_BENCH_B_ENV="K=V …" (a second iocmng side at the same priority with that environment,
 * for an A/B of a runtime setting), PVA_BENCH_DUMP=<prefix> (every round trip, in order, to
 * <prefix>.<side>).
 */

import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { ALLOCATOR_ENV } from "../../src/common/allocator.ts";
import { Cmd } from "../../src/pva/codec/index.ts";
import { PvaClient } from "../../test/helpers/pva-client.ts";
import { median } from "./ca-client.ts";
import { cpuSeconds, parseStat, rssMb } from "./procfs.ts";

const PVXS_BIN = process.env.PVXS_BIN ?? "/work/ref/pvxs/bin/linux-x86_64";

interface Srv {
  name: string;
  pid: number;
  tcp: number;
  udp: number;
  update(n: number, hz: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The scheduling of the thread of `pid` that serves PVA TCP: pvxs's `PVXTCP` (not PVXCTCP, its
 * client side), our main thread. "FIFO 18 (PVXTCP)" or "OTHER". EPICS runs its server threads
 * SCHED_FIFO when permitted (root), so softIocPVX's usually is.
 */
function schedOf(pid: number): { policy: number; priority: number; label: string } {
  let best = { policy: 0, priority: 0, label: "OTHER" };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const { name, fields: f } = parseStat(stat);
    const priority = Number(f[37]); // field 40 rt_priority, 41 policy (proc(5))
    const policy = Number(f[38]);
    if (policy === 1 && /^(PVXTCP|bun|iocmng)$/.test(name) && priority > best.priority) {
      best = { policy, priority, label: `FIFO ${priority} (${name})` };
    }
  }
  return best;
}

async function startOurs(
  count: number,
  withCa = false,
  env: Record<string, string> = {},
): Promise<Srv> {
  // PVA_BENCH_PROF=<dir> profiles our server process (bun --cpu-prof) for the whole run.
  const prof = process.env.PVA_BENCH_PROF;
  const args = ["bun", ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : [])];
  args.push("scripts/bench/pva-server-proc.ts", String(count));
  if (withCa) args.push("--ca");
  const proc = Bun.spawn(args, {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
    // The allocator settings `iocmng serve` runs with (src/common/allocator.ts), unless set here.
    env: { ...ALLOCATOR_ENV, ...process.env, ...env },
  });
  const reader = proc.stdout.getReader();
  let buf = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("server process ended");
      buf += new TextDecoder().decode(value);
    }
  };
  const [, tcp, udp] = (await nextLine()).split(" ");
  const cmd = async (line: string) => {
    proc.stdin.write(`${line}\n`);
    proc.stdin.flush();
    return JSON.parse(await nextLine());
  };
  return {
    name: "iocmng",
    pid: proc.pid,
    tcp: Number(tcp),
    udp: Number(udp),
    async update(n, hz) {
      await cmd(`update ${n} ${hz}`);
    },
    async stop() {
      proc.stdin.end();
      const t = setTimeout(() => proc.kill(), 5000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/** softIocPVX with N `ao` records (the first `scanned` are calc records processed at 10 Hz). */
async function startReference(count: number, scanned = 0, withCa = false): Promise<Srv> {
  const dir = mkdtempSync(join(tmpdir(), "pva-bench-"));
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(
      i < scanned
        ? `record(calc, "BENCH:D${i}") { field(SCAN, ".1 second") field(CALC, "VAL+1") }`
        : `record(ao, "BENCH:D${i}") {}`,
    );
  }
  lines.push(`record(ao, "BENCH:LAT") { field(VAL, "1.5") }`);
  writeFileSync(join(dir, "bench.db"), lines.join("\n"));
  const tcp = 20000 + Math.floor(Math.random() * 20000);
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    EPICS_PVAS_SERVER_PORT: String(tcp),
    EPICS_PVAS_BROADCAST_PORT: String(tcp + 1),
    EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_BEACON_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(tcp + 2),
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
  };
  if (!withCa) env.EPICS_IOC_IGNORE_SERVERS = "rsrv";
  const proc = Bun.spawn([`${PVXS_BIN}/softIocPVX`, "-d", join(dir, "bench.db")], {
    // Its IOC shell writes .iocsh_history into the working directory: keep that out of the repo.
    cwd: dir,
    env,
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
  });
  for (let i = 0; ; i++) {
    try {
      (await PvaClient.connect(tcp)).close();
      break;
    } catch (e) {
      if (i > 200) throw e;
      await Bun.sleep(50);
    }
  }
  return {
    name: "softIocPVX",
    pid: proc.pid,
    tcp,
    udp: tcp + 1,
    async update() {},
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

function clientEnv(s: Srv): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    EPICS_PVA_ADDR_LIST: "127.0.0.1",
    EPICS_PVA_AUTO_ADDR_LIST: "NO",
    EPICS_PVA_BROADCAST_PORT: String(s.udp),
  };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `BENCH:D${i}`);

let lastClientCpu = 0;

/** Wall time of one `pvxget` of all `n` PVs (search, connect, get), seconds. */
async function connectGet(s: Srv, n: number): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn([`${PVXS_BIN}/pvxget`, "-w", "20", ...names(n)], {
    env: clientEnv(s),
    stdout: "ignore",
    stderr: "pipe",
  });
  const code = await p.exited;
  if (code !== 0)
    throw new Error(`pvxget failed on ${s.name}: ${await new Response(p.stderr).text()}`);
  const wall = (performance.now() - t0) / 1000;
  const ru = p.resourceUsage();
  lastClientCpu = ru ? Number(ru.cpuTime.user + ru.cpuTime.system) / 1e6 : 0;
  return wall;
}

/**
 * Both servers up at once and the `pvxget` runs alternated (the order swapped every round), so a
 * change in the machine's load hits both alike; the ratio is the median of the per-round ratios.
 */
async function benchConnect(): Promise<void> {
  const n = 10_000;
  const rounds = Number(process.env.PVA_BENCH_ROUNDS ?? 7);
  const servers = [await startOurs(n), await startReference(n)];
  const res = servers.map(() => ({
    wall: [] as number[],
    cpu: [] as number[],
    client: [] as number[],
  }));
  const ratios: number[] = [];
  const load0 = loadavg()[0] ?? 0;
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? [0, 1] : [1, 0];
    for (const k of order) {
      const s = servers[k] as Srv;
      const r = res[k] as (typeof res)[number];
      const c0 = cpuSeconds(s.pid);
      r.wall.push(await connectGet(s, n));
      r.cpu.push(cpuSeconds(s.pid) - c0);
      r.client.push(lastClientCpu);
    }
    ratios.push((res[0]?.wall[i] ?? 0) / (res[1]?.wall[i] ?? 1));
  }
  for (const [k, s] of servers.entries()) {
    const r = res[k] as (typeof res)[number];
    console.log(
      `connect+get ${n} (pvxget): ${s.name} first ${r.wall[0]?.toFixed(3)} s, median of ${rounds} ${median(r.wall).toFixed(3)} s; CPU median: server ${median(r.cpu).toFixed(2)} s, pvxget ${median(r.client).toFixed(2)} s`,
    );
  }
  console.log(
    `connect+get ${n}: iocmng / softIocPVX, median of ${rounds} alternated rounds ${median(ratios).toFixed(2)}x (rounds: ${ratios.map((x) => x.toFixed(2)).join(" ")}); load average ${load0.toFixed(1)} -> ${(loadavg()[0] ?? 0).toFixed(1)}`,
  );
  for (const s of servers) await s.stop();
}

const GET_CLIENT = process.env.PVA_GET_CLIENT ?? "/tmp/pva-get-client";

/** Builds scripts/bench/pva-get-client.c (gcc, no libraries) when missing or older than the source. */
function buildGetClient(): void {
  const src = join(import.meta.dir, "pva-get-client.c");
  if (existsSync(GET_CLIENT) && statSync(GET_CLIENT).mtimeMs >= statSync(src).mtimeMs) return;
  const r = Bun.spawnSync(["gcc", "-O2", "-o", GET_CLIENT, src]);
  if (r.exitCode !== 0) throw new Error(`building ${GET_CLIENT} failed: ${r.stderr.toString()}`);
}

/**
 * Round-trip times (µs) of `rounds` GETs on each server, alternated one GET per server per round
 * after `warmup` unmeasured ones on each. By default with the C client (pva-get-client.c): a Bun
 * client's own JIT, GC and helper threads were a good part of the tail it measured, on both servers
 * alike (PVA_BENCH_CLIENT=bun measures with our test client as before).
 */
async function getTimes(servers: Srv[], rounds: number, warmup: number): Promise<number[][]> {
  if (process.env.PVA_BENCH_CLIENT !== "bun") {
    buildGetClient();
    const ports = servers.map((s) => String(s.tcp));
    const p = Bun.spawn([GET_CLIENT, String(warmup), String(rounds), ...ports], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const out = await new Response(p.stdout).text();
    if ((await p.exited) !== 0) throw new Error("pva-get-client failed");
    return out
      .trim()
      .split("\n")
      .map((line) => line.split(" ").slice(3).map(Number));
  }
  const sides: { c: PvaClient; sid: number; ioid: number; times: number[] }[] = [];
  for (const s of servers) {
    const c = await PvaClient.connect(s.tcp);
    const { sid } = await c.channel("BENCH:LAT");
    const ioid = c.ioid();
    await c.init(Cmd.GET, sid, ioid);
    sides.push({ c, sid, ioid, times: [] });
  }
  const round = async (side: (typeof sides)[number], keep: boolean): Promise<void> => {
    const t0 = performance.now();
    side.c.send(Cmd.GET, (w) => w.u32(side.sid).u32(side.ioid).u8(0));
    await side.c.reply(Cmd.GET, side.ioid);
    if (keep) side.times.push((performance.now() - t0) * 1000);
  };
  for (const side of sides) for (let i = 0; i < warmup; i++) await round(side, false);
  for (let i = 0; i < rounds; i++) for (const side of sides) await round(side, true);
  for (const side of sides) side.c.close();
  return sides.map((side) => side.times);
}

/**
 * Sequential GET round trips on one operation (INIT once, EXEC repeated). iocmng runs with the
 * reference's scheduling: softIocPVX's TCP thread is SCHED_FIFO when permitted (EPICS does that as
 * root), so ours gets IOCMNG_RT_PRIORITY at the same priority then; a third side, iocmng at normal
 * priority, shows what that is worth in the same run (docs/pva.md §Scheduling).
 * PVA_BENCH_RT=<n> forces our priority (0 = normal, and no third side).
 *
 * All servers are up at once and the GETs alternated one by one, so a burst of load from elsewhere
 * on the machine hits every side alike (with blocks of 500 GETs per side, as before, a burst landed
 * on one side's block: p99s of the same server swung 0.3-2.6 ms between invocations at load 3).
 */
async function benchLatency(): Promise<void> {
  // 2,000 measured GETs per side by default: its p99 is the 20th slowest, so one burst of load
  // elsewhere moves it; PVA_BENCH_GETS=20000 gives a steadier tail for release figures.
  const rounds = Number(process.env.PVA_BENCH_GETS ?? 2000);
  // 20,000 GETs per side before measuring: without the (opt-in) PVA warm-up JSC compiles the GET
  // path over the first ~15,000 GETs (docs/pva.md §Scheduling); a server that has served traffic
  // for a while is past that, and so is softIocPVX's page-cache-warm state.
  const warmup = Number(process.env.PVA_BENCH_WARMUP ?? 20_000);
  const ref = await startReference(10);
  const refSched = schedOf(ref.pid);
  const forced = process.env.PVA_BENCH_RT;
  const rt = forced !== undefined ? Number(forced) : refSched.policy === 1 ? refSched.priority : 0;
  const servers: Srv[] = [await startOurs(10, false, { IOCMNG_RT_PRIORITY: String(rt) })];
  // PVA_BENCH_B_ENV="K=V K2=V2": the second side is iocmng at the same priority with that
  // environment added (an A/B of a runtime setting in one alternated run) instead of iocmng at
  // normal priority.
  const bEnv = process.env.PVA_BENCH_B_ENV;
  if (bEnv) {
    // Split at each pair's first "=": a value may hold one (split's limit would cut it off).
    const extra = Object.fromEntries(
      bEnv.split(" ").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    const b = await startOurs(10, false, { IOCMNG_RT_PRIORITY: String(rt), ...extra });
    servers.push({ ...b, name: `iocmng (${bEnv})` });
  } else if (rt > 0 && forced === undefined) {
    const normal = await startOurs(10, false, { IOCMNG_RT_PRIORITY: "0" });
    servers.push({ ...normal, name: "iocmng (normal priority)" });
  }
  servers.push(ref);
  const load0 = loadavg()[0] ?? 0;
  const all = await getTimes(servers, rounds, warmup);
  const client = process.env.PVA_BENCH_CLIENT === "bun" ? "Bun test client" : "C client";
  const p99s: number[] = [];
  for (const [k, s] of servers.entries()) {
    if (process.env.PVA_BENCH_DUMP)
      writeFileSync(`${process.env.PVA_BENCH_DUMP}.${k}`, (all[k] ?? []).join("\n"));
    const times = (all[k] ?? []).sort((a, b) => a - b);
    const p = (q: number) => times[Math.floor(times.length * q)] ?? 0;
    p99s.push(p(0.99));

    console.log(
      `GET round trip x${rounds} (alternated, ${client}): ${s.name} [${schedOf(s.pid).label}] p50 ${p(0.5).toFixed(1)} µs, p99 ${p(0.99).toFixed(1)} µs`,
    );
  }
  for (const s of servers) await s.stop();
  console.log(
    `GET round trip p99 iocmng / softIocPVX ${((p99s[0] ?? 0) / (p99s[p99s.length - 1] ?? 1)).toFixed(2)}x; load average ${load0.toFixed(1)} -> ${(loadavg()[0] ?? 0).toFixed(1)}`,
  );
}

/** One client monitoring `n` PVs on one connection; counts the updates it receives. */
async function monitorClient(
  s: Srv,
  n: number,
): Promise<{ count: () => number; close: () => void }> {
  const c = await PvaClient.connect(s.tcp);
  let count = 0;
  // Count (and drop) updates from the start, so the setup's replies are found without scanning them.
  c.tap = (m) => {
    if (m.command !== Cmd.MONITOR || m.payload[4] !== 0) return false;
    count++;
    return true;
  };
  for (let i = 0; i < n; i++) {
    const { sid } = await c.channel(`BENCH:D${i}`);
    const ioid = c.ioid();
    await c.init(Cmd.MONITOR, sid, ioid);
    c.send(Cmd.MONITOR, (w) => w.u32(sid).u32(ioid).u8(0x44));
  }
  return { count: () => count, close: () => c.close() };
}

/** 1,000 PVs changing at 10 Hz, 5 clients subscribed to all: server CPU per million updates. */
async function benchFanout(): Promise<void> {
  const n = 1000;
  const clients = 5;
  const windowS = Number(process.env.PVA_BENCH_WINDOW ?? 6);
  const servers = [() => startOurs(n), () => startReference(n, n)];
  for (const start of process.env.PVA_BENCH_OURS_ONLY ? servers.slice(0, 1) : servers) {
    const s = await start();
    await s.update(n, 10);
    const mons = [];
    for (let i = 0; i < clients; i++) mons.push(await monitorClient(s, n));
    await Bun.sleep(2000); // settle
    const c0 = cpuSeconds(s.pid);
    const u0 = mons.reduce((a, m) => a + m.count(), 0);
    await Bun.sleep(windowS * 1000);
    const cpu = cpuSeconds(s.pid) - c0;
    const updates = mons.reduce((a, m) => a + m.count(), 0) - u0;
    console.log(
      `fan-out ${n} PVs x 10 Hz x ${clients} clients, ${windowS} s: ${s.name} ${updates} updates received (nominal ${n * 10 * clients * windowS}), ${cpu.toFixed(2)} CPU-s, ${((cpu / updates) * 1e6).toFixed(2)} CPU-s per M updates`,
    );
    for (const m of mons) m.close();
    await s.update(0, 0);
    await s.stop();
  }
}

/** RSS serving 11,000 PVs on both CA and PVA: idle, then after one pvxget of all of them. */
async function benchMemory(): Promise<void> {
  const n = 11_000;
  for (const start of [() => startOurs(n, true), () => startReference(n, 0, true)]) {
    const s = await start();
    await Bun.sleep(1000);
    const idle = rssMb(s.pid);
    await connectGet(s, n);
    const after = rssMb(s.pid);
    console.log(
      `RSS ${n} PVs on CA+PVA: ${s.name} idle ${idle.toFixed(0)} MB, after a get of all ${after.toFixed(0)} MB`,
    );
    await s.stop();
  }
}

const benches: Record<string, () => Promise<void>> = {
  connect: benchConnect,
  latency: benchLatency,
  fanout: benchFanout,
  memory: benchMemory,
};
const which = process.argv.slice(2);
for (const name of which.length > 0 ? which : Object.keys(benches)) {
  const b = benches[name];
  if (!b) throw new Error(`unknown benchmark ${name}; one of ${Object.keys(benches).join(", ")}`);
  await b();
}
