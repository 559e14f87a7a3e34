import { afterAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { ALLOCATOR_ENV, allocatorEnvFor, allocatorReexecEnv } from "../../src/common/allocator.ts";
import { makeDirs, type ServerDirs, spawnServer } from "./lib/server.ts";

/**
 * `iocmng serve` re-executes itself once, at start, with mimalloc's purge delay set
 * (src/common/allocator.ts): same pid, same arguments, the user's own value kept. Checked on a real
 * server from /proc and from mimalloc's own report of its options (MIMALLOC_VERBOSE).
 */
const allDirs: ServerDirs[] = [];
afterAll(async () => {
  await Promise.all(allDirs.map((d) => d.remove()));
});

function environOf(pid: number): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const eq = kv.indexOf("=");
    if (eq > 0) m.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  return m;
}

/** Every value mimalloc reported for `option` (MIMALLOC_VERBOSE), in order. */
function options(output: string, option: string): string[] {
  return [...output.matchAll(new RegExp(`option '${option}': (-?\\d+)`, "g"))].map(
    (m) => m[1] ?? "",
  );
}

async function serveWith(env: Record<string, string>) {
  const d = await makeDirs();
  allDirs.push(d);
  return await spawnServer(d, { env: { MIMALLOC_VERBOSE: "1", ...env } });
}

test("serve runs with mimalloc's purge delay at 1 s, in the process it was started as", async () => {
  const srv = await serveWith({});
  try {
    // The pid Bun.spawn returned is the serving process: the re-exec kept it.
    const env = environOf(srv.proc.pid);
    expect(env.get("MIMALLOC_PURGE_DELAY")).toBe("1000");
    expect(env.get("MIMALLOC_PURGE_HOLES_MIN_INTERVAL")).toBe("1000");
    // mimalloc printed its options twice: its defaults before the exec, ours after it.
    expect(options(srv.output(), "purge_delay")).toEqual(["100", "1000"]);
    expect(options(srv.output(), "purge_holes_min_interval")).toEqual(["100", "1000"]);
    const health = await srv.api("GET", "/health");
    expect(health.status).toBe(200);
  } finally {
    await srv.kill();
  }
});

test("values the user set are kept and the server starts once", async () => {
  const srv = await serveWith({
    MIMALLOC_PURGE_DELAY: "250",
    MIMALLOC_PURGE_HOLES_MIN_INTERVAL: "300",
  });
  try {
    const env = environOf(srv.proc.pid);
    expect(env.get("MIMALLOC_PURGE_DELAY")).toBe("250");
    expect(env.get("MIMALLOC_PURGE_HOLES_MIN_INTERVAL")).toBe("300");
    expect(options(srv.output(), "purge_delay")).toEqual(["250"]);
    expect(options(srv.output(), "purge_holes_min_interval")).toEqual(["300"]);
  } finally {
    await srv.kill();
  }
});

test("allocatorReexecEnv adds only what is missing and keeps the rest of the environment", () => {
  const env = allocatorReexecEnv({ PATH: "/bin", UNSET: undefined });
  expect(env).toEqual({ PATH: "/bin", ...ALLOCATOR_ENV });
  const partial = allocatorReexecEnv({ PATH: "/bin", MIMALLOC_PURGE_DELAY: "5" });
  expect(partial).toEqual({ ...ALLOCATOR_ENV, PATH: "/bin", MIMALLOC_PURGE_DELAY: "5" });
  const all = Object.fromEntries(Object.keys(ALLOCATOR_ENV).map((k) => [k, ""]));
  expect(allocatorReexecEnv({ PATH: "/bin", ...all })).toBeNull();
});

test("plugins get the server's allocator values, ours where the server has none", () => {
  expect(allocatorEnvFor({})).toEqual({ ...ALLOCATOR_ENV });
  expect(allocatorEnvFor({ MIMALLOC_PURGE_DELAY: "100" })).toEqual({
    ...ALLOCATOR_ENV,
    MIMALLOC_PURGE_DELAY: "100",
  });
});

test("the image sets the allocator settings, so a container's server starts once", () => {
  // The Dockerfile's ENV (read as text: no Docker engine here); the re-exec costs ~15-25 ms of
  // cold start, which the image's users need not pay.
  const dockerfile = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");
  for (const [k, v] of Object.entries(ALLOCATOR_ENV)) {
    expect(dockerfile).toMatch(new RegExp(`^\\s+${k}=${v}\\b`, "m"));
  }
});
