/**
 * The compiled executable carries the console, the docs viewer and the PVWS endpoint: started from
 * an empty directory (no sources, no node_modules), it serves every asset the console page and the
 * docs page name, and answers on the PV Web Socket.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, buildBinary } from "../../scripts/build.ts";
import { serverEnv } from "../binary/serve-process.ts";
import { PvwsTestClient } from "../helpers/pvws-client.ts";

let work: string;
let proc: ReturnType<typeof Bun.spawn>;
let httpPort: number;
let origin: string;

beforeAll(async () => {
  await buildBinary({ quiet: true }); // rebuilt only when an input changed
  work = mkdtempSync(join(tmpdir(), "iocmng-bin-web-"));
  const se = await serverEnv({
    IOCMNG_STATE_DIR: join(work, "state"),
    IOCMNG_PLUGINS_DIR: join(work, "plugins"),
    IOCMNG_PREFIX: "BW",
  });
  httpPort = se.httpPort;
  origin = `http://127.0.0.1:${httpPort}`;
  // cwd = an empty directory: nothing can come from the source tree or node_modules.
  proc = Bun.spawn([BINARY, "serve"], {
    cwd: work,
    env: se.env,
    stdout: "ignore",
    stderr: "ignore",
  });
  for (let i = 0; ; i++) {
    const up = await fetch(`${origin}/api/v1/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (proc.exitCode !== null || i > 600) throw new Error("dist/iocmng serve did not start");
    await Bun.sleep(100);
  }
}, 300_000);

afterAll(async () => {
  proc?.kill("SIGTERM");
  await proc?.exited;
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Every same-origin `src`/`href` of an HTML page. */
function assets(html: string): string[] {
  return [...html.matchAll(/(?:src|href)="(\/[^"]*)"/g)].map((m) => m[1] ?? "");
}

test("the console page and all its assets come from the executable", async () => {
  const html = await (await fetch(`${origin}/`)).text();
  expect(html).toContain("iocmng console");
  const urls = assets(html);
  expect(urls.some((u) => u.endsWith(".js"))).toBe(true);
  expect(urls.some((u) => u.endsWith(".css"))).toBe(true);
  expect(html).not.toMatch(/(?:src|href)="https?:/);
  for (const u of urls) {
    const r = await fetch(`${origin}${u}`);
    expect([u, r.status]).toEqual([u, 200]);
    expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(100);
  }
}, 60_000);

test("the docs page's viewer comes from the executable", async () => {
  const html = await (await fetch(`${origin}/api/v1/docs`)).text();
  const urls = assets(html);
  expect(urls).toEqual(["/api/v1/docs/scalar.js"]);
  const r = await fetch(`${origin}${urls[0]}`);
  expect(r.status).toBe(200);
  expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
}, 60_000);

test("the PV Web Socket, /metrics and the overview screen answer", async () => {
  const c = await PvwsTestClient.connect(`ws://127.0.0.1:${httpPort}/pvws/pv`);
  c.send({ type: "echo", from: "binary" });
  expect((await c.next()).from).toBe("binary");
  c.close();
  expect(await (await fetch(`${origin}/metrics`)).text()).toContain("iocmng_ca_circuits");
  expect(await (await fetch(`${origin}/api/v1/display.bob`)).text()).toContain(
    '<display version="2.0.0">',
  );
}, 60_000);
