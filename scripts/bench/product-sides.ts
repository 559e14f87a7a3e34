/**
 * The two servers of scripts/bench/product.ts, started as their users start them, and the
 * /proc readings taken of them (CPU of a process tree, RSS and PSS from smaps_rollup).
 *
 * - iocmng: `dist/iocmng serve` when built (`bun run build`), else `bun src/main.ts serve`, with a
 *   fresh state dir and loopback ports; plugins are added over REST and restored at boot.
 * - softIoc (EPICS Base at $EPICS_BASE, default /work/ref/epics-base) with a database of the same
 *   record counts: `ao` records for the static doubles, `calc` records scanned at 10 Hz for the
 *   updating ones.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freeTcpPort, freeUdpPort } from "../../test/e2e/lib/server.ts";
import { makeRepo } from "../../test/helpers/git-e2e.ts";
import { BINARY, isUpToDate } from "../build.ts";
import { cpuSeconds, parseStat } from "./procfs.ts";

const ROOT = join(import.meta.dir, "../..");
export const SOFTIOC = join(
  process.env.EPICS_BASE ?? "/work/ref/epics-base",
  "bin/linux-x86_64/softIoc",
);

/** A running server: its pid (the root of its process tree) and the CA port clients use. */
export interface Side {
  name: string;
  pid: number;
  caPort: number;
  /** Milliseconds from spawn until it was ready (REST health / iocInit done). */
  readyMs: number;
  /** Everything it logged so far (iocmng: JSON lines on stdout). */
  log(): string;
  stop(): Promise<void>;
}

/** How iocmng is started: the compiled binary when present, else from sources. */
export function iocmngCommand(): { argv: string[]; what: string } {
  // PRODUCT_IOCMNG: another command line (words split on spaces), e.g. a kept copy of an older
  // binary for a before/after comparison, or `bun --cpu-prof src/main.ts` to profile the server.
  const custom = process.env.PRODUCT_IOCMNG?.trim();
  if (custom) return { argv: [...custom.split(/\s+/), "serve"], what: `PRODUCT_IOCMNG=${custom}` };
  if (existsSync(BINARY)) {
    const fresh = isUpToDate();
    return {
      argv: [BINARY, "serve"],
      what: `dist/iocmng (compiled binary, ${fresh ? "up to date with the sources" : "STALE: older than the sources, run `bun run build`"})`,
    };
  }
  return { argv: ["bun", join(ROOT, "src/main.ts"), "serve"], what: "bun src/main.ts (sources)" };
}

/** Fixed ports and dirs of one iocmng installation, reused across its restarts. */
export interface IocmngInstall {
  root: string;
  httpPort: number;
  caPort: number;
  env: Record<string, string>;
  base: string;
}

export async function iocmngInstall(root: string, prefix: string): Promise<IocmngInstall> {
  const httpPort = freeTcpPort();
  const caPort = await freeUdpPort();
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: root,
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(httpPort),
    IOCMNG_STATE_DIR: join(root, "state"),
    IOCMNG_PLUGINS_DIR: join(root, "plugins"),
    IOCMNG_PREFIX: prefix,
    // info: the boot lines (the CA warm-up's cost among them); nothing per request is logged.
    IOCMNG_LOG_LEVEL: "info",
    // Passed through so a run can compare without the warm-up (IOCMNG_CA_WARMUP=0).
    ...(process.env.IOCMNG_CA_WARMUP !== undefined
      ? { IOCMNG_CA_WARMUP: process.env.IOCMNG_CA_WARMUP }
      : {}),
    EPICS_CAS_SERVER_PORT: String(caPort),
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_ADDR_LIST: `127.0.0.1:${await freeUdpPort()}`,
    EPICS_PVAS_SERVER_PORT: String(freeTcpPort()),
    EPICS_PVAS_BROADCAST_PORT: String(await freeUdpPort()),
    EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_PVAS_BEACON_ADDR_LIST: "127.0.0.1",
  };
  return { root, httpPort, caPort, env, base: `http://127.0.0.1:${httpPort}/api/v1` };
}

async function stopProc(p: Subprocess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill(signal);
  const t = setTimeout(() => p.kill("SIGKILL"), 15_000);
  // Never hang the benchmark on a process that does not report its end.
  await Promise.race([p.exited, Bun.sleep(20_000)]);
  clearTimeout(t);
}

/**
 * Starts iocmng and resolves once GET /health answers (REST listens only after the persisted
 * plugins are restored, so their PVs are served by then), polling every 5 ms.
 */
export async function startIocmng(
  inst: IocmngInstall,
  argv: string[],
  extraEnv: Record<string, string> = {},
  name = "iocmng",
): Promise<Side> {
  const t0 = performance.now();
  const proc = Bun.spawn(argv, {
    env: { ...inst.env, ...extraEnv },
    cwd: inst.root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const errText = new Response(proc.stderr).text();
  let out = "";
  (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) out += dec.decode(chunk);
  })();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`iocmng exited at start: ${await errText}`);
    const ok = await fetch(`${inst.base}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (performance.now() - t0 > 120_000) {
      await stopProc(proc, "SIGKILL");
      throw new Error("iocmng did not answer /health within 120 s");
    }
    await Bun.sleep(5);
  }
  return {
    name,
    pid: proc.pid,
    caPort: inst.caPort,
    readyMs: performance.now() - t0,
    log: () => out,
    stop: () => stopProc(proc),
  };
}

/** The softIoc database: `ao` per static name, a 10 Hz `calc` (RNDM) per updating name. */
export function softIocDb(staticNames: string[], updatingNames: string[]): string {
  const out: string[] = [];
  for (const n of staticNames) out.push(`record(ao, "${n}") {}`);
  for (const n of updatingNames)
    out.push(`record(calc, "${n}") {\n  field(SCAN, ".1 second")\n  field(CALC, "RNDM")\n}`);
  return `${out.join("\n")}\n`;
}

/**
 * Starts softIoc on `dbFile`; ready once it printed the end of iocInit. `prefix`: a command it runs
 * under, e.g. setpriv dropping CAP_SYS_NICE (as root EPICS runs its threads SCHED_FIFO).
 */
export async function startSoftIoc(dbFile: string, prefix: string[] = []): Promise<Side> {
  const caPort = await freeUdpPort();
  const t0 = performance.now();
  const proc = Bun.spawn([...prefix, SOFTIOC, "-S", "-d", dbFile], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_CAS_SERVER_PORT: String(caPort),
      EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
      EPICS_CAS_BEACON_ADDR_LIST: `127.0.0.1:${await freeUdpPort()}`,
    },
    // -S: no IOC shell (it would exit at the end of stdin); runs until killed.
    stdin: "ignore",
    stdout: "ignore",
    // iocInit reports on stderr (errlog), unbuffered.
    stderr: "pipe",
  });
  const reader = proc.stderr.getReader();
  let seen = "";
  while (!seen.includes("iocRun: All initialization complete")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`softIoc exited at start: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  // Keep draining its output so it never blocks on a full pipe.
  (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  return {
    name: "softIoc",
    pid: proc.pid,
    caPort,
    readyMs: performance.now() - t0,
    log: () => seen,
    stop: () => stopProc(proc),
  };
}

/** `pid` and every process below it (plugin processes are children of the server). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(parseStat(readFileSync(`/proc/${d}/stat`, "utf8")).fields[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(d)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** utime+stime in seconds of each process of the tree, by pid (a process gone is skipped). */
export function treeCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const p of processTree(pid)) {
    try {
      out.set(p, cpuSeconds(p));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** CPU seconds the tree spent between two treeCpu readings (processes present in both). */
export function cpuBetween(a: Map<number, number>, b: Map<number, number>): number {
  let s = 0;
  for (const [p, v] of b) s += v - (a.get(p) ?? v);
  return s;
}

/** RSS and PSS (bytes) of a process tree from smaps_rollup: the server alone and the total. */
export function treeMemory(pid: number): {
  procs: number;
  serverRss: number;
  serverPss: number;
  rss: number;
  pss: number;
} {
  const r = { procs: 0, serverRss: 0, serverPss: 0, rss: 0, pss: 0 };
  for (const p of processTree(pid)) {
    try {
      const roll = readFileSync(`/proc/${p}/smaps_rollup`, "utf8");
      const rss = Number(/^Rss:\s+(\d+)/m.exec(roll)?.[1] ?? 0) * 1024;
      const pss = Number(/^Pss:\s+(\d+)/m.exec(roll)?.[1] ?? 0) * 1024;
      if (p === pid) {
        r.serverRss = rss;
        r.serverPss = pss;
      }
      r.rss += rss;
      r.pss += pss;
      r.procs++;
    } catch {
      // Gone meanwhile.
    }
  }
  return r;
}

/** The static doubles one plugin makes (`big`, D0..D9999) and the PVs the updater sets at 10 Hz. */
export const DOUBLES = 10_000;
export const UPDATING = 1000;

/**
 * Adds the product path's plugins over REST to a running iocmng (`base`: its /api/v1 URL): `big`
 * makes the 10,000 doubles (one plugin may make 10,000 PVs of its own, its default PVs aside),
 * `upd` the 1,000 updated at 10 Hz through setPv. Resolves with the PV count of each.
 */
export async function addProductPlugins(base: string): Promise<Array<[string, number]>> {
  const doubles = await makeRepo(doublesPlugin(DOUBLES));
  const updater = await makeRepo(updaterPlugin(UPDATING));
  const out: Array<[string, number]> = [];
  try {
    const adds: Array<[string, string, Record<string, number>]> = [
      ["big", doubles.url, { first: 0, count: DOUBLES }],
      ["upd", updater.url, {}],
    ];
    for (const [name, url, parameters] of adds) {
      const r = await fetch(`${base}/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, git_url: url, parameters }),
      });
      if (r.status !== 201) throw new Error(`adding ${name}: ${r.status} ${await r.text()}`);
      const info = (await r.json()) as { plugin?: { pvs?: unknown[] } };
      out.push([name, info.plugin?.pvs?.length ?? Number.NaN]);
    }
  } finally {
    await doubles.remove();
    await updater.remove();
  }
  return out;
}

/** The plugin that makes `parameters.count` doubles D<first>.. (`big`: all 10,000). */
export function doublesPlugin(half: number): Record<string, string> {
  return {
    "doubles.ts": `import { TaskBase } from "iocmng";
// Makes parameters.count double PVs D<first>..D<first+count-1> at load; nothing runs after.
export default class Doubles extends TaskBase {
  async initialize() {
    const first = Number(this.parameters.first ?? 0);
    const count = Number(this.parameters.count ?? ${half});
    const adds = [];
    for (let i = first; i < first + count; i++) adds.push(this.addPv("D" + i, { kind: "double", initial: i }));
    await Promise.all(adds);
  }
  execute() {}
  cleanup() {}
}
`,
    "config.yaml": "parameters:\n  mode: triggered\n",
  };
}

/** The plugin that makes `updating` doubles U0.. and sets every one of them each cycle (10 Hz). */
export function updaterPlugin(updating: number): Record<string, string> {
  return {
    "updater.ts": `import { TaskBase } from "iocmng";
// Makes ${updating} double PVs U0..U${updating - 1} and sets every one of them each cycle (10 Hz).
export default class Updater extends TaskBase {
  private tick = 0;
  async initialize() {
    const adds = [];
    for (let i = 0; i < ${updating}; i++) adds.push(this.addPv("U" + i, { kind: "double", initial: 0 }));
    await Promise.all(adds);
  }
  execute() {
    this.tick++;
    for (let i = 0; i < ${updating}; i++) this.setPv("U" + i, this.tick + i / 1000);
  }
  cleanup() {}
}
`,
    "config.yaml": "parameters:\n  mode: continuous\n  interval: 0.1\n",
  };
}

/**
 * The layout of ca-p99.ts and product-storm.ts: the 10,000 doubles from two plugins of 5,000
 * (`biga`, `bigb`) and the updater's 1,000, and the names a storm connects to.
 */
export const SPLIT_HALF = 5000;
export const splitStormNames = [
  ...Array.from({ length: SPLIT_HALF }, (_, i) => `BENCH:BIGA:D${i}`),
  ...Array.from({ length: SPLIT_HALF }, (_, i) => `BENCH:BIGB:D${SPLIT_HALF + i}`),
];
export const splitUpdatingNames = Array.from({ length: UPDATING }, (_, i) => `BENCH:UPD:U${i}`);

/** The files a bench on the split setup works with (ca-p99.ts, product-storm.ts). */
export interface SplitBenchFiles {
  /** Its temporary directory (the iocmng installation, the client, the lists); remove it at the end. */
  work: string;
  /** Where the C load client (product-client.c) is built. */
  client: string;
  /** The storm's 10,000 names, one per line. */
  stormFile: string;
  /** The softIoc database serving the same names. */
  dbFile: string;
}

/** Makes a temporary directory named after `prefix` and writes the storm list and softIoc database. */
export function splitBenchFiles(prefix: string): SplitBenchFiles {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const stormFile = join(work, "storm.txt");
  writeFileSync(stormFile, `${splitStormNames.join("\n")}\n`);
  const dbFile = join(work, "bench.db");
  writeFileSync(dbFile, softIocDb(splitStormNames, splitUpdatingNames));
  return { work, client: join(work, "product-client"), stormFile, dbFile };
}

/**
 * An iocmng installation under `root` with the split layout's plugins added over REST (the
 * server started with `argv` for that, then stopped: each variant's start restores them).
 */
export async function installSplit(root: string, argv: string[]): Promise<IocmngInstall> {
  const inst = await iocmngInstall(root, "BENCH");
  const doubles = await makeRepo(doublesPlugin(SPLIT_HALF));
  const updater = await makeRepo(updaterPlugin(UPDATING));
  const s = await startIocmng(inst, argv);
  try {
    const adds: Array<[string, string, Record<string, number>]> = [
      ["biga", doubles.url, { first: 0, count: SPLIT_HALF }],
      ["bigb", doubles.url, { first: SPLIT_HALF, count: SPLIT_HALF }],
      ["upd", updater.url, {}],
    ];
    for (const [name, url, parameters] of adds) {
      const r = await fetch(`${inst.base}/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name, git_url: url, parameters }),
      });
      if (r.status !== 201) throw new Error(`adding ${name}: ${r.status} ${await r.text()}`);
    }
  } finally {
    await s.stop();
    await doubles.remove();
    await updater.remove();
  }
  return inst;
}

/**
 * softIoc-nort: softIoc without CAP_SYS_NICE. As root (this machine's benches run as root) EPICS
 * gives its threads SCHED_FIFO priorities (CAS-TCP 16, CAS-UDP 12, scan-0.1 65, a circuit's
 * CAS-client thread …), so its CA replies preempt every ordinary process; without the capability
 * (any non-root IOC without RLIMIT_RTPRIO) they run SCHED_OTHER like iocmng's main thread.
 */
const NO_RT = ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", "--"];

/**
 * Starts one variant of ca-p99.ts / product-storm.ts: `softIoc`, `softIoc-nort` (on `dbFile`), or
 * `iocmng[+ENV=VALUE,…]` on `inst` (`IOCMNG_BIN=<path>` among them runs that binary instead of
 * `argv`, e.g. a copy of dist/iocmng kept from before a change).
 */
export async function startVariant(
  v: string,
  inst: IocmngInstall,
  argv: string[],
  dbFile: string,
): Promise<Side> {
  if (v === "softIoc") return startSoftIoc(dbFile);
  if (v === "softIoc-nort") return startSoftIoc(dbFile, NO_RT);
  const env = variantEnv(v);
  const bin = env.IOCMNG_BIN;
  delete env.IOCMNG_BIN;
  return startIocmng(inst, bin ? [bin, "serve"] : argv, env, v);
}

/** The load average as "1m 5m 15m", for every figure a bench prints. */
export const loadText = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");

/** The extra environment of a variant `iocmng+ENV=VALUE[,ENV=VALUE]` (none for a plain name). */
function variantEnv(variant: string): Record<string, string> {
  const plus = variant.indexOf("+");
  if (plus < 0) return {};
  const env: Record<string, string> = {};
  for (const kv of variant.slice(plus + 1).split(",")) {
    const eq = kv.indexOf("=");
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}
