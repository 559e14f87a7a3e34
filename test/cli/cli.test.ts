import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { runCli } from "../../src/cli/index.ts";
import { VERSION } from "../../src/version.ts";

const ROOT = join(import.meta.dir, "..", "..");

/** Runs the CLI in-process and captures what it prints. */
async function cli(argv: string[], env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    env,
    cwd: ROOT,
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

/** Runs `bun src/main.ts …` as a real process (exit code and streams as a user sees them). */
function spawnCli(argv: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), ...argv], {
    cwd: ROOT,
    env: { ...process.env, IOCMNG_LOG_LEVEL: "info", ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

describe("version and help", () => {
  test("--version / -v print the package version", async () => {
    for (const flag of ["--version", "-v"]) {
      const r = await cli([flag]);
      expect(r.code).toBe(0);
      expect(r.out).toBe(VERSION);
    }
  });

  test("--help lists every command; each command has its own --help", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["serve", "validate", "new", "run", "health"]) {
      expect(r.out).toContain(`  ${c} `);
      const h = await cli([c, "--help"]);
      expect(h.code).toBe(0);
      expect(h.out).toStartWith(`Usage: iocmng ${c}`);
      expect(await cli(["help", c])).toEqual(h);
    }
  });
});

describe("usage errors exit 2 with one line", () => {
  const cases: Array<[string[], RegExp]> = [
    [["frobnicate"], /^iocmng: unknown command 'frobnicate'/],
    [["help", "frobnicate"], /^iocmng: unknown command 'frobnicate'/],
    [["serve", "--bogus"], /^iocmng serve: unknown option '--bogus'/],
    [["new"], /^iocmng new: missing kind/],
    [["new", "daemon", "x"], /kind must be task or job/],
    [["new", "task"], /missing plugin name/],
    [["new", "task", "../escape"], /must be 1 to 128 of/],
    [["new", "task", "a b"], /must be 1 to 128 of/],
    [["new", "task", "x".repeat(129)], /must be 1 to 128 of/],
    [["new", "job", "x", "--mode", "triggered"], /--mode applies to tasks only/],
    [["health", "--url", "not a url"], /is not a URL/],
    [["health", "--url", "file:///etc/passwd"], /must be http/],
    [["health", "--timeout", "-1"], /--timeout/],
    [["validate"], /missing/],
    [["run"], /missing/],
  ];
  for (const [argv, message] of cases) {
    test(argv.join(" ").slice(0, 60) || "(empty)", async () => {
      const r = await cli(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err.split("\n")).toHaveLength(1);
      expect(r.out).toBe("");
    });
  }

  test("a real process exits 2 and prints no stack", () => {
    const r = spawnCli(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).not.toContain("    at ");
  });
});

describe("health", () => {
  const servers: Array<{ stop(force?: boolean): void }> = [];
  afterAll(() => {
    for (const s of servers) s.stop(true);
  });

  function serve(status: number, body: string) {
    const s = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Response(body, { status }),
    });
    servers.push(s);
    return `http://127.0.0.1:${s.port}/api/v1/health`;
  }

  test("exit 0 on 200 + status healthy", async () => {
    const url = serve(200, JSON.stringify({ status: "healthy", version: "x" }));
    const r = await cli(["health", "--url", url]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("healthy");
  });

  test("exit 1 on a 503, on a 200 that is not healthy, and on garbage", async () => {
    for (const [status, body] of [
      [503, JSON.stringify({ status: "healthy" })],
      [200, JSON.stringify({ status: "degraded" })],
      [200, "<html>not json"],
    ] as const) {
      const r = await cli(["health", "--url", serve(status, body)]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^iocmng health: unhealthy/);
    }
  });

  test("exit 1, one line, when nothing listens (default URL from IOCMNG_PORT)", async () => {
    // Bind then close a port so that nothing listens on it.
    const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const port = s.port;
    s.stop(true);
    const r = await cli(["health"], { IOCMNG_PORT: String(port) });
    expect(r.code).toBe(1);
    expect(r.err).toContain(`http://127.0.0.1:${port}/api/v1/health unreachable`);
    expect(r.err.split("\n")).toHaveLength(1);
  });
});

describe("serve", () => {
  test("a bad configuration is one line and exit 1, no stack", () => {
    const r = spawnCli(["serve", "--port", "99999"]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^iocmng serve: configuration: .*IOCMNG_PORT/);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  test("with IOCMNG_LOG_LEVEL=debug the stack is printed too", () => {
    const r = spawnCli(["serve", "--port", "99999"], { IOCMNG_LOG_LEVEL: "debug" });
    expect(r.code).toBe(1);
    expect(r.err).toContain("    at ");
  });
});
