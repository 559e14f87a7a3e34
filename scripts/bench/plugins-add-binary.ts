#!/usr/bin/env bun
/**
 * Add latency with the compiled executable (what is deployed): `dist/iocmng serve` on loopback,
 * then `POST /api/v1/tasks` → 201 (clone, checks, plugin process start, import, PVs, initialize())
 * and `DELETE`, N times after 2 warm-ups. Build first: `bun run build`.
 * Usage: bun scripts/bench/plugins-add-binary.ts [iterations=10] [steps] [compare]
 * `steps`: the server logs at debug level and the median time of each pipeline step is printed
 * (where an add's time goes). `compare`: a second server with `sandbox.spare: false` runs next to
 * the default one and the adds alternate between the two (before/after under the same load).
 */
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freeTcpPort, freeUdpPort } from "../../test/e2e/lib/server.ts";
import { BINARY } from "../build.ts";
import { hostLine, pluginRepo, summary } from "./plugins-common.ts";

const N = Number(process.argv[2] ?? 10);
const STEPS = process.argv.includes("steps");
const COMPARE = process.argv.includes("compare");
const root = await mkdtemp(join(tmpdir(), "iocmng-bench-bin-"));

interface Bench {
  label: string;
  base: string;
  proc: ReturnType<typeof Bun.spawn>;
  logText: Promise<string>;
  post: number[];
  del: number[];
}

async function serve(label: string, spare: boolean): Promise<Bench> {
  const dir = join(root, label);
  const cfg = join(root, `${label}.yaml`);
  await Bun.write(cfg, `sandbox:\n  spare: ${spare}\n`);
  const port = freeTcpPort();
  const proc = Bun.spawn([BINARY, "serve"], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(port),
      IOCMNG_CONFIG: cfg,
      IOCMNG_STATE_DIR: join(dir, "state"),
      IOCMNG_PLUGINS_DIR: join(dir, "plugins"),
      IOCMNG_LOG_LEVEL: STEPS ? "debug" : "warn",
      EPICS_CAS_SERVER_PORT: String(await freeUdpPort()),
      EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    },
    stdout: STEPS ? "pipe" : "ignore",
    stderr: "ignore",
  });
  const logText = STEPS ? new Response(proc.stdout as ReadableStream).text() : Promise.resolve("");
  return { label, base: `http://127.0.0.1:${port}/api/v1`, proc, logText, post: [], del: [] };
}

async function waitUp(b: Bench): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (
      await fetch(`${b.base}/tasks`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return;
    await Bun.sleep(100);
  }
  throw new Error(`${b.label}: server did not start`);
}

/** RSS and PSS (MiB) of the idle spare process of server `pid`, from /proc (smaps_rollup). */
function spareMemory(pid: number): string {
  for (const n of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${n}/cmdline`, "latin1");
      if (!cmd.includes('"name":"spare"') || !cmd.includes(`"parent":${pid},`)) continue;
      const roll = readFileSync(`/proc/${n}/smaps_rollup`, "utf8");
      const mib = (k: string) =>
        (Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(roll)?.[1] ?? 0) / 1024).toFixed(1);
      return `RSS ${mib("Rss")} MiB, PSS ${mib("Pss")} MiB (pid ${n})`;
    } catch {
      // Gone, or not readable.
    }
  }
  return "no spare found";
}

const benches = [await serve("spare", true), ...(COMPARE ? [await serve("nospare", false)] : [])];
const repo = await pluginRepo({
  "t.ts": `import { TaskBase } from "iocmng";
export default class T extends TaskBase { initialize() {} execute() {} cleanup() {} }
`,
  "config.yaml": "parameters:\n  mode: triggered\n",
});
try {
  for (const b of benches) await waitUp(b);
  for (let i = 0; i < N + 2; i++) {
    if (i === 1) {
      // No spare at boot: the first add started one (and took it) and the next one behind it.
      // Give it time, as a human's second add would, and show what it costs while it waits.
      await Bun.sleep(1500);
      console.log(`idle spare of the server: ${spareMemory(benches[0]?.proc.pid ?? 0)}`);
    }
    for (const b of i % 2 === 0 ? benches : [...benches].reverse()) {
      const t0 = performance.now();
      const r = await fetch(`${b.base}/tasks`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: `b${i}`, git_url: repo.url }),
      });
      const t1 = performance.now();
      if (r.status !== 201) throw new Error(`${b.label}: add failed: ${await r.text()}`);
      const d = await fetch(`${b.base}/tasks/b${i}`, { method: "DELETE" });
      const t2 = performance.now();
      if (d.status !== 200) throw new Error(`${b.label}: delete failed: ${await d.text()}`);
      if (i >= 2) {
        b.post.push(t1 - t0);
        b.del.push(t2 - t1);
      }
      // Adds a human makes are seconds apart; the next spare has time to start.
      await Bun.sleep(300);
    }
  }
} finally {
  for (const b of benches) b.proc.kill("SIGTERM");
  for (const b of benches) await b.proc.exited;
  await repo.remove();
  await rm(root, { recursive: true, force: true });
}
console.log(hostLine());
for (const b of benches) {
  const tag = `dist/iocmng (spare ${b.label === "spare" ? "on" : "off"})`;
  console.log(`${tag}: POST /tasks → 201:  ${summary(b.post)}  (target p50 < 300 ms)`);
  console.log(`${tag}: DELETE /tasks/{name}: ${summary(b.del)}`);
  if (!STEPS) continue;
  const byStep = new Map<string, number[]>();
  for (const line of (await b.logText).split("\n")) {
    if (!line.includes('"step done"')) continue;
    const { step, ms } = JSON.parse(line) as { step: string; ms: number };
    byStep.set(step, [...(byStep.get(step) ?? []), ms]);
  }
  for (const [step, ms] of byStep) console.log(`  step ${step.padEnd(12)} ${summary(ms)}`);
}
