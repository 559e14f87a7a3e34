#!/usr/bin/env bun
/**
 * Console first load: a spawned server (the compiled dist/iocmng when present and up to date,
 * else `bun src/main.ts serve`) and Debian's chromium through playwright-core (nothing
 * downloaded). Measures, for a fresh browser context (empty cache): time from navigation start to
 * the plugin list rendered, and bytes transferred (headers + encoded bodies); then the same on a
 * reload (cache warm); and the docs page's first load. Runs a few times and prints each run.
 *
 *   bun scripts/bench/console-load.ts [runs=3]
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { launchChromium } from "../../test/helpers/browser.ts";
import { isUpToDate } from "../build.ts";

const runs = Number(process.argv[2] ?? 3);
const ROOT = join(import.meta.dir, "../..");
const binary = join(ROOT, "dist/iocmng");
const useBinary = existsSync(binary) && isUpToDate();
const dir = await mkdtemp(join(tmpdir(), "iocmng-console-bench-"));
const port = 20000 + Math.floor(Math.random() * 20000);
const cmd = useBinary ? [binary, "serve"] : [process.execPath, "src/main.ts", "serve"];
const server = Bun.spawn(cmd, {
  cwd: ROOT,
  env: {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: dir,
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(port),
    IOCMNG_STATE_DIR: join(dir, "state"),
    IOCMNG_PLUGINS_DIR: join(dir, "plugins"),
    EPICS_CAS_SERVER_PORT: String(port + 1),
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_ADDR_LIST: `127.0.0.1:${port + 2}`,
    IOCMNG_LOG_LEVEL: "warn",
  },
  stdout: "ignore",
  stderr: "inherit",
});
const origin = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${origin}/api/v1/health`)).ok) break;
  } catch {
    if (i > 300) throw new Error("server did not start");
  }
  await Bun.sleep(100);
}

const browser = await launchChromium();

/** Navigates and waits for `ready`; returns ms and bytes transferred. */
async function load(page: Page, url: string, ready: string, reload = false) {
  let bytes = 0;
  const pending: Promise<void>[] = [];
  const onDone = (r: import("playwright-core").Request) => {
    pending.push(
      r.sizes().then((s) => {
        bytes += s.responseHeadersSize + s.responseBodySize;
      }),
    );
  };
  page.on("requestfinished", onDone);
  const t0 = performance.now();
  if (reload) await page.reload();
  else await page.goto(url);
  await page.locator(ready).first().waitFor({ timeout: 60_000 });
  const ms = performance.now() - t0;
  await page.waitForLoadState("networkidle").catch(() => {});
  await Promise.all(pending);
  page.off("requestfinished", onDone);
  return { ms: Math.round(ms), kB: Math.round(bytes / 102.4) / 10 };
}

const results = [];
for (let i = 0; i < runs; i++) {
  const ctx: BrowserContext = await browser.newContext();
  const page = await ctx.newPage();
  const cold = await load(page, `${origin}/`, "text=No plugins loaded");
  const warm = await load(page, `${origin}/`, "text=No plugins loaded", true);
  const docs = await load(page, `${origin}/api/v1/docs`, "text=iocmng REST API");
  results.push({ cold, warm, docs });
  await ctx.close();
}
console.log(JSON.stringify({ server: useBinary ? "dist/iocmng" : "bun src/main.ts", results }));
await browser.close();
server.kill();
await server.exited;
await rm(dir, { recursive: true, force: true });
