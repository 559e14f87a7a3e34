#!/usr/bin/env bun
/**
 * Cold start, idle memory and size of iocmng.
 *
 *   bun scripts/bench/coldstart.ts [runs]        (default 10 runs per variant)
 *   bun scripts/bench/coldstart.ts runs OTHER...  (dist/iocmng against other binaries, e.g. a
 *                                                  copy of an older build: starts alternate)
 *
 * Cold start = process spawn → REST `GET /api/v1/health` answers 200 AND the CA server answers a
 * CA VERSION exchange on its TCP port (both polled every 2 ms). Measured for the compiled binary
 * (dist/iocmng, built if stale) and for the sources (`bun src/main.ts serve`). Idle RSS is VmRSS
 * 2 s after ready with no plugin loaded. Prints the figures; docs/benchmarks.md records them.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { serverEnv } from "../../test/binary/serve-process.ts";
import { BINARY, buildBinary } from "../build.ts";

const ROOT = join(import.meta.dir, "..", "..");
const runs = Number(process.argv[2] ?? 10);
if (!Number.isInteger(runs) || runs < 1 || runs > 1000) {
  console.error("usage: bun scripts/bench/coldstart.ts [runs 1..1000] [other binary...]");
  process.exit(2);
}
/** Other builds to compare with, started in turn with dist/iocmng (load changes are shared). */
const others = process.argv.slice(3);

/** A CA VERSION request (command 0, minor version 13): the server answers with its own VERSION. */
const CA_VERSION = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0]);

function caAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, s?: { end(): void }) => {
      if (done) return;
      done = true;
      s?.end();
      resolve(ok);
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (s) => {
          s.write(CA_VERSION);
        },
        data: (s, d) => finish(d.length >= 16 && d[0] === 0 && d[1] === 0, s),
        close: () => finish(false),
        error: () => finish(false),
        connectError: () => finish(false),
      },
    }).catch(() => finish(false));
    setTimeout(() => finish(false), 500);
  });
}

async function restAnswers(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/health`);
    return r.status === 200;
  } catch {
    return false;
  }
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function once(cmd: string[], measureRss: boolean) {
  const work = mkdtempSync(join(tmpdir(), "iocmng-coldstart-"));
  const { env, httpPort, caPort } = await serverEnv({
    IOCMNG_PLUGINS_DIR: join(work, "plugins"),
    IOCMNG_STATE_DIR: join(work, "state"),
    IOCMNG_LOG_LEVEL: "warn",
  });
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  let rest = false;
  let ca = false;
  let ms = Number.NaN;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${cmd.join(" ")} exited with ${proc.exitCode}`);
    rest ||= await restAnswers(httpPort);
    ca ||= await caAnswers(caPort);
    if (rest && ca) {
      ms = performance.now() - t0;
      break;
    }
    if (performance.now() - t0 > 30_000) throw new Error("not ready after 30 s");
    await Bun.sleep(2);
  }
  let rss = Number.NaN;
  if (measureRss) {
    await Bun.sleep(2000);
    rss = rssMb(proc.pid);
  }
  proc.kill("SIGTERM");
  await proc.exited;
  rmSync(work, { recursive: true, force: true });
  return { ms, rss };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Alternates `serve` starts of dist/iocmng and `others`, one start each per round. */
async function alternate(): Promise<void> {
  const bins = [BINARY, ...others];
  const times = new Map<string, number[]>(bins.map((b) => [b, []]));
  for (const b of bins) await once([b, "serve"], false); // warm the page cache once
  for (let i = 0; i < runs; i++) {
    for (const b of bins) times.get(b)?.push((await once([b, "serve"], false)).ms);
  }
  for (const [b, t] of times) {
    t.sort((x, y) => x - y);
    console.log(
      `${b.padEnd(40)} cold start p50 ${pct(t, 50).toFixed(1)} ms  p90 ${pct(t, 90).toFixed(1)} ms  min ${t[0]?.toFixed(1)} ms  max ${t.at(-1)?.toFixed(1)} ms`,
    );
  }
}

await buildBinary({ quiet: true });
if (others.length > 0) {
  console.log(`iocmng cold start, alternated: ${runs} runs each, load ${loadavg().join(" ")}`);
  await alternate();
  console.log(`load ${loadavg().join(" ")}`);
  process.exit(0);
}
const variants: Array<[string, string[]]> = [
  ["binary (dist/iocmng serve)", [BINARY, "serve"]],
  ["sources (bun src/main.ts serve)", [process.execPath, join(ROOT, "src/main.ts"), "serve"]],
];
console.log(
  `iocmng cold start: ${runs} runs per variant, ${navigator.hardwareConcurrency} CPUs, Bun ${Bun.version}`,
);
console.log("(shared machine: other work may run concurrently; figures are indicative)\n");
for (const [label, cmd] of variants) {
  await once(cmd, false); // warm the page cache once
  const times: number[] = [];
  let rss = Number.NaN;
  for (let i = 0; i < runs; i++) {
    const r = await once(cmd, i === runs - 1);
    times.push(r.ms);
    if (!Number.isNaN(r.rss)) rss = r.rss;
  }
  times.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(34)} cold start p50 ${pct(times, 50).toFixed(1)} ms  p90 ${pct(times, 90).toFixed(1)} ms  min ${times[0]?.toFixed(1)} ms  max ${times.at(-1)?.toFixed(1)} ms | idle RSS ${rss.toFixed(1)} MB`,
  );
}
console.log(
  `\nbinary size: ${(statSync(BINARY).size / 1e6).toFixed(1)} MB (${statSync(BINARY).size} bytes)`,
);
