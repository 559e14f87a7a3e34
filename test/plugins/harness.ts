/**
 * Shared setup for plugin runtime tests: a real PvRegistry, StateStore and PluginController over
 * temp directories, fixture plugins turned into real git repos, and bounded polling helpers.
 */
import { afterAll, beforeAll } from "bun:test";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import pino from "pino";
import type { ServerConfig } from "../../src/config.ts";
import type { PluginController, RuntimeTimings } from "../../src/plugins/controller.ts";
import type { PvRegistry } from "../../src/pv/registry.ts";
import { buildRuntime } from "../../src/server.ts";
import type { StateStore } from "../../src/state/index.ts";
import { createRepo, type RepoFile, type TestRepo } from "../helpers/git-repo.ts";

const FIXTURES = join(import.meta.dir, "..", "fixtures", "plugins");

/** Files of a fixture plugin directory, path → content. */
export async function fixtureFiles(name: string, under = ""): Promise<Record<string, RepoFile>> {
  const root = join(FIXTURES, name);
  const out: Record<string, RepoFile> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      if (e.isDirectory()) await walk(full);
      else out[join(under, relative(root, full))] = await readFile(full, "utf8");
    }
  };
  await walk(root);
  return out;
}

/** A fixture plugin as a fresh git repo. */
export async function fixtureRepo(
  name: string,
  extra: Record<string, RepoFile> = {},
): Promise<TestRepo> {
  return createRepo({ files: { ...(await fixtureFiles(name)), ...extra } });
}

/** A controller with everything real, over temp dirs. */
export interface Env {
  registry: PvRegistry;
  controller: PluginController;
  state: StateStore;
  config: ServerConfig;
  root: string;
  /** Lines logged (JSON objects) — for secrecy checks. */
  logs: string[];
  /** A second controller over the same dirs (simulates a server restart). */
  reopen(): Promise<Env>;
  close(): Promise<void>;
}

/** Timings short enough for tests, still generous on a loaded machine. */
export const TEST_TIMINGS: Partial<RuntimeTimings> = { watchdogMs: 2500, importTimeoutMs: 20_000 };

/** Builds an Env; `root` reuses existing dirs. */
export async function makeEnv(
  opts: {
    registry?: PvRegistry;
    root?: string;
    config?: Partial<ServerConfig>;
    timings?: Partial<RuntimeTimings>;
  } = {},
): Promise<Env> {
  const root = opts.root ?? (await mkdtemp(join(tmpdir(), "iocmng-rt-")));
  const logs: string[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void logs.push(s) });
  const config: ServerConfig = {
    host: "127.0.0.1",
    port: 0,
    pluginsDir: join(root, "plugins"),
    stateDir: join(root, "state"),
    logLevel: "debug",
    prefix: "TEST",
    beamline: null,
    namespace: null,
    beamlineValues: null,
    apiToken: null,
    disableDevices: true,
    plugins: [],
    configFile: null,
    beamlineConfigFile: null,
    ...opts.config,
  };
  // The server's own composition root, without a CA server (tests that need one bring it).
  const runtime = await buildRuntime(config, logger, {
    caConfig: false,
    ...(opts.registry !== undefined ? { registry: opts.registry } : {}),
    timings: { ...TEST_TIMINGS, ...opts.timings },
  });
  const { registry, state, controller } = runtime;
  const env: Env = {
    registry,
    controller,
    state,
    config,
    root,
    logs,
    reopen: () => makeEnv({ ...opts, root }),
    close: () => runtime.stop(),
  };
  return env;
}

/**
 * One Env for every test of a file: made before the first test (handed to `set`), destroyed after
 * the last with the repositories the tests pushed onto the returned array.
 */
export function fileEnv(set: (env: Env) => void): TestRepo[] {
  let env: Env | undefined;
  const repos: TestRepo[] = [];
  beforeAll(async () => {
    env = await makeEnv();
    set(env);
  });
  afterAll(async () => {
    if (env) await destroyEnv(env);
    for (const r of repos) await r.cleanup();
  });
  return repos;
}

/** Removes an Env's directories. */
export async function destroyEnv(env: Env): Promise<void> {
  await env.close();
  await rm(env.root, { recursive: true, force: true });
}

/** Polls `fn` until it returns truthy or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** Value of a PV by full name. */
export function pvValue(env: Env, name: string): unknown {
  const pv = env.registry.get(name);
  if (!pv) throw new Error(`no PV ${name}`);
  return pv.value;
}

/**
 * Awaits `p` and returns its rejection reason as text (or throws if it resolved). Used instead of
 * `expect(p).rejects`, which in bun:test waits for the promise in a nested event loop that does not
 * deliver Worker messages, so a reply from a plugin's worker never arrives.
 */
export async function rejectionOf(p: Promise<unknown> | undefined): Promise<string> {
  if (!p) throw new Error("no promise (missing PV?)");
  try {
    await p;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  throw new Error("expected a rejection, but the promise resolved");
}
