/**
 * Shared pieces of the plugin benchmarks: an in-process server on loopback with temp dirs, a local
 * git repository holding a plugin, REST calls, and percentiles.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../../src/config.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { freeTcpPort, freeUdpPort } from "../../test/e2e/lib/server.ts";
import { makeRepo, type TestRepo } from "../../test/helpers/git-e2e.ts";

/** A server for a benchmark, plus what to clean afterwards. */
export interface BenchServer {
  srv: RunningServer;
  base: string;
  caEnv: Record<string, string>;
  post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/** Starts iocmng in this process on loopback (warn-level logs so logging does not skew figures). */
export async function benchServer(prefix = "BENCH"): Promise<BenchServer> {
  const root = await mkdtemp(join(tmpdir(), "iocmng-bench-"));
  const cfgFile = join(root, "iocmng.yaml");
  await Bun.write(cfgFile, `prefix: ${prefix}\n`);
  const config = loadConfig({
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(freeTcpPort()),
    IOCMNG_STATE_DIR: join(root, "state"),
    IOCMNG_PLUGINS_DIR: join(root, "plugins"),
    IOCMNG_CONFIG: cfgFile,
  });
  const caPort = await freeUdpPort();
  const srv = await startServer(config, pino({ level: process.env.BENCH_LOG ?? "warn" }), {
    env: {},
    caConfig: {
      serverPort: caPort,
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
      beaconAddrs: [`127.0.0.1:${await freeUdpPort()}`],
    },
  });
  const base = `http://127.0.0.1:${srv.httpPort}/api/v1`;
  return {
    srv,
    base,
    caEnv: {
      EPICS_CA_ADDR_LIST: "127.0.0.1",
      EPICS_CA_AUTO_ADDR_LIST: "NO",
      EPICS_CA_SERVER_PORT: String(srv.caUdpPort),
    },
    async post(path, body) {
      const res = await fetch(base + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    async close() {
      await srv.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A local repository with one plugin (no dependencies). */
export function pluginRepo(files: Record<string, string>): Promise<TestRepo> {
  return makeRepo(files);
}

/** The q-quantile (0..1) of `xs` by nearest rank. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i] as number;
}

/** "p50 x / p95 y / p99 z / max w" in ms with one decimal. */
export function summary(xs: number[], unit = "ms"): string {
  const f = (v: number) => v.toFixed(unit === "ms" ? 3 : 1);
  return `n=${xs.length} p50 ${f(quantile(xs, 0.5))} / p95 ${f(quantile(xs, 0.95))} / p99 ${f(quantile(xs, 0.99))} / max ${f(Math.max(...xs))} ${unit}`;
}

/** Host facts printed with every figure (the machine is shared, so figures are indicative). */
export function hostLine(): string {
  const cpu = cpus();
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
  return `host: ${cpu.length} CPU (${cpu[0]?.model ?? "?"}), load ${load}, bun ${Bun.version} (shared machine: other work was running)`;
}
