/**
 * `iocmng run` with 2.7.9's iocmng-run options: `-m iocmng.declarative --config`, `--prefix`
 * (complete), `-p KEY=VALUE` (typed), `--pvout` (the ChannelFinder feeder's pvlist format).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseParam } from "../../src/compat/run-options.ts";
import { freePort } from "../binary/serve-process.ts";

const ROOT = join(import.meta.dir, "..", "..");
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "iocmng-compat-run-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("-p values are typed as 2.7.9 types them", () => {
  expect(parseParam("n=3")).toEqual(["n", 3]);
  expect(parseParam("x=0.5")).toEqual(["x", 0.5]);
  expect(parseParam("flag=true")).toEqual(["flag", true]);
  expect(parseParam("off=False")).toEqual(["off", false]);
  expect(parseParam("s=hello=world")).toEqual(["s", "hello=world"]);
  expect(parseParam("hex=0x10")).toEqual(["hex", "0x10"]);
  expect(() => parseParam("novalue")).toThrow("expected KEY=VALUE");
  expect(() => parseParam("1x=2")).toThrow("KEY must be a parameter name");
});

test("-m iocmng.declarative --config --prefix -p --pvout --once", async () => {
  const pvout = join(work, "ioc", "pvlist.txt");
  const caPort = await freePort();
  const proc = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "src/main.ts"),
      "run",
      "-m",
      "iocmng.declarative",
      "--config",
      join(ROOT, "test/fixtures/compat-2.7.9/stats/config.yaml"),
      "--prefix",
      "LAB:STATS",
      "-p",
      "limit=0.7",
      "-p",
      "timeout=0.2",
      "--pvout",
      pvout,
      "--once",
    ],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: work,
        IOCMNG_LOG_PRETTY: "0",
        EPICS_CAS_SERVER_PORT: String(caPort),
        EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
        EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
        EPICS_CAS_BEACON_ADDR_LIST: `127.0.0.1:${await freePort()}`,
        EPICS_CA_ADDR_LIST: "127.0.0.1",
        EPICS_CA_AUTO_ADDR_LIST: "NO",
      },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  expect(`${code} ${err}`).toStartWith("0");
  expect(out).toContain("LAB:STATS:AVG");
  const lines = readFileSync(pvout, "utf8");
  expect(lines.endsWith("\n")).toBe(true);
  const names = lines.trimEnd().split("\n");
  expect(names).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  expect(names).toEqual(
    expect.arrayContaining([
      "LAB:STATS:AVG",
      "LAB:STATS:GAIN",
      "LAB:STATS:sig",
      "LAB:STATS:VERSION",
      "LAB:STATS:CLEAR",
    ]),
  );
  // Upper case sorts before lower case, as a plain string sort does.
  expect(names.indexOf("LAB:STATS:VERSION")).toBeLessThan(names.indexOf("LAB:STATS:sig"));
}, 120_000);

test("bad 2.7.9 options are usage errors with the fix", async () => {
  const run = async (...args: string[]) => {
    const p = Bun.spawn([process.execPath, join(ROOT, "src/main.ts"), "run", ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    return { err, code };
  };
  const a = await run("-m", "iocmng.declarative");
  expect(a.code).not.toBe(0);
  expect(a.err).toContain("needs --config PATH");
  const b = await run("-m", "my_python_module");
  expect(b.err).toContain("iocmng runs a plugin directory, not a Python module");
  const c = await run(join(ROOT, "test/fixtures/compat-2.7.9/intlk"), "-p", "oops");
  expect(c.err).toContain("expected KEY=VALUE");
  const d = await run(join(ROOT, "test/fixtures/compat-2.7.9/intlk"), "--prefix", "A:", "--once");
  expect(d.err).toContain("--prefix 'A:' must be a PV name fragment");
}, 60_000);
