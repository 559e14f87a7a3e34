/**
 * Two real iocmng servers for the 2.7.9 acceptance tests: B plays the "other IOCs" (config-only
 * simulator plugins serving TEST:CHL:RUN, TEST:RF:ON, TEST:SIG, TEST:VAC:OK/P, TEST:VALVE:CMD),
 * A runs the three 2.7.9 example plugins whose links point at B's PVs. Both load their plugins
 * from one real git repository made by the test (the examples are the unchanged fixture files).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { py } from "../../e2e/lib/pyepics.ts";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "../../e2e/lib/server.ts";
import { createRepo, type TestRepo } from "../../helpers/git-repo.ts";

const FIXTURES = resolve(import.meta.dir, "../../fixtures/compat-2.7.9");

/** The simulated IOC PVs: config-only plugins, one per PV group (prefix from config.yaml). */
const SIMS: Record<string, string> = {
  // RUN is a framework PV name, so TEST:CHL:RUN comes from a plugin named "test" declaring
  // "CHL:RUN" in our own config schema (no code either: config-only works for it too).
  test: `pvs:\n  inputs:\n    "CHL:RUN": {type: int, value: 1}\n    SIG: {type: float, value: 1.0}\n`,
  rf: `prefix: "TEST:RF"\narguments:\n  inputs:\n    "ON": {type: int, value: 1}\n`,
  vac: `prefix: "TEST:VAC"\narguments:\n  inputs:\n    OK: {type: int, value: 1}\n    P: {type: float, value: 1.0e-8}\n`,
  valve: `prefix: "TEST:VALVE"\narguments:\n  inputs:\n    CMD: {type: int, value: 1}\n`,
};

export const EXAMPLES = ["intlk", "stats", "vac"] as const;

/** Files of the repository: sim/<name>/config.yaml and the unchanged fixture directories. */
export function repoFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [name, cfg] of Object.entries(SIMS)) files[`sim/${name}/config.yaml`] = cfg;
  for (const ex of EXAMPLES) {
    for (const f of ["config.yaml", "plugin.py"]) {
      files[`${ex}/${f}`] = readFileSync(join(FIXTURES, ex, f), "utf8");
    }
  }
  return files;
}

export interface TwoServers {
  repo: TestRepo;
  a: SpawnedServer;
  b: SpawnedServer;
  /** pyepics against A's PVs, or B's. */
  pyA(body: string): Promise<unknown>;
  pyB(body: string): Promise<unknown>;
  stop(): Promise<void>;
}

async function runPy(body: string, env: Record<string, string>): Promise<unknown> {
  const r = await py(body, env);
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr}\n${r.stdout}`);
  return r.result;
}

async function add(s: SpawnedServer, name: string, url: string, path: string): Promise<void> {
  const r = await s.api("POST", "/tasks", { name, git_url: url, path });
  if (r.status !== 201) throw new Error(`adding ${name}: ${r.status} ${JSON.stringify(r.body)}`);
}

/** Starts B with the simulators, then A (prefix T, CA client pointed at B). */
export async function startTwoServers(
  opts: { aEnv?: Record<string, string>; loadExamples?: boolean } = {},
): Promise<TwoServers> {
  const repo = await createRepo({ files: repoFiles() });
  const dirsB: ServerDirs = await makeDirs();
  const dirsA: ServerDirs = await makeDirs();
  const cfgDir = await mkdtemp(join(tmpdir(), "iocmng-compat-cfg-"));
  const cfgB = join(cfgDir, "b.yaml");
  await writeFile(cfgB, 'prefix: ""\n');
  const b = await spawnServer(dirsB, { env: { IOCMNG_CONFIG: cfgB } });
  for (const name of Object.keys(SIMS)) {
    await add(b, name === "test" ? "test" : `sim-${name}`, repo.url, `sim/${name}`);
  }
  await waitFor(
    "B's simulated PVs",
    async () => {
      const r = await runPy(`out([get("TEST:CHL:RUN"), get("TEST:VALVE:CMD")])`, b.caEnv).catch(
        () => undefined,
      );
      return r === undefined ? undefined : r;
    },
    60_000,
  );
  const a = await spawnServer(dirsA, {
    env: {
      IOCMNG_PREFIX: "T",
      // The plugins' CA client (links) talks to B only.
      EPICS_CA_ADDR_LIST: "127.0.0.1",
      EPICS_CA_AUTO_ADDR_LIST: "NO",
      EPICS_CA_SERVER_PORT: String(b.caPort),
      EPICS_CA_REPEATER_PORT: String(20000 + (b.caPort % 20000)),
      ...opts.aEnv,
    },
  });
  if (opts.loadExamples !== false) {
    for (const ex of EXAMPLES) await add(a, ex, repo.url, ex);
  }
  return {
    repo,
    a,
    b,
    pyA: (body) => runPy(body, a.caEnv),
    pyB: (body) => runPy(body, b.caEnv),
    async stop() {
      await Promise.allSettled([a.kill(), b.kill()]);
      await Promise.allSettled([
        dirsA.remove(),
        dirsB.remove(),
        repo.cleanup(),
        rm(cfgDir, { recursive: true, force: true }),
      ]);
    },
  };
}

/** Polls a pyepics expression on A until `pred` holds (generous bound; no timing assertion). */
export async function untilA<T>(
  s: TwoServers,
  what: string,
  body: string,
  pred: (v: T) => boolean,
  ms = 60_000,
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const v = (await s.pyA(body)) as T;
      return pred(v) ? v : undefined;
    },
    ms,
  );
}
