/**
 * The operator console in a real browser (Debian's chromium driven by playwright-core; nothing is
 * downloaded) against a spawned server with real plugins from a git repository the test creates.
 * Every request that would leave the server fails the test (route interception). Screenshots of
 * each page go to .test-results/console/.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { COUNTER_TASK, DIAG_JOB, FAILING, GATED_TASK } from "../e2e/lib/plugins.ts";
import { py } from "../e2e/lib/pyepics.ts";
import {
  makeDirs,
  type ServerDirs,
  type SpawnedServer,
  spawnServer,
  waitFor,
} from "../e2e/lib/server.ts";
import { launchChromium } from "../helpers/browser.ts";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";

const SHOTS = resolve(import.meta.dir, "../../.test-results/console");
const TOKEN = "console-secret";
/** Bounds for waits in a loaded machine: failure after this long, never a timing assertion. */
const WAIT = 30_000;

let dirs: ServerDirs;
let srv: SpawnedServer;
let repo: TestRepo;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let origin: string;
const outbound: string[] = [];
const auth = { authorization: `Bearer ${TOKEN}` };

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  const files: Record<string, string> = {};
  const plugins = {
    counter: COUNTER_TASK,
    diag: DIAG_JOB,
    broken: FAILING.start?.files ?? {},
    gated: GATED_TASK,
  };
  for (const [dir, plugin] of Object.entries(plugins)) {
    for (const [f, body] of Object.entries(plugin)) files[`${dir}/${f}`] = body;
  }
  repo = await makeRepo(files);
  dirs = await makeDirs();
  srv = await spawnServer(dirs, { env: { IOCMNG_PREFIX: "BR", IOCMNG_API_TOKEN: TOKEN } });
  origin = `http://127.0.0.1:${srv.httpPort}`;
  const r = await srv.api(
    "POST",
    "/tasks",
    { name: "counter", git_url: repo.url, path: "counter" },
    auth,
  );
  expect(r.status).toBe(201);
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  // Closed network: anything not addressed to this server is refused and recorded.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    outbound.push(url);
    return route.abort();
  });
  page = await context.newPage();
  page.on("dialog", (d) => void d.accept());
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await srv?.kill();
  await dirs?.remove();
  await repo?.remove();
});

describe("console", () => {
  test("plugin list with live values", async () => {
    await page.goto(`${origin}/`);
    const row = page.locator('tr[data-plugin="counter"]');
    await row.waitFor({ timeout: WAIT });
    const cycles = row.locator('[data-field="cycles"]');
    const first = Number(await cycles.textContent());
    // CYCLE_COUNT arrives over the PV Web Socket: it changes without a reload.
    await waitFor("CYCLE_COUNT to change in the page", async () =>
      Number(await cycles.textContent()) > first ? true : undefined,
    );
    expect(await row.locator('[data-field="status"]').textContent()).toBe("RUN");
    // The plugin process' resident memory and CPU time (procfs, on the server side).
    await row.locator('[data-field="rss"]').waitFor({ timeout: WAIT });
    expect(await row.locator('[data-field="rss"]').textContent()).toMatch(/^[1-9]\d* MiB$/);
    expect(await row.locator('[data-field="cpu"]').textContent()).toMatch(/ s CPU$/);
    await shot("plugins");
    await page.getByRole("button", { name: "Wall display" }).click();
    await shot("plugins-wall");
    await page.getByRole("button", { name: "Wall display" }).click();
  }, 120_000);

  test("one plugin: live PVs, a write with the token seen on CA", async () => {
    await page.getByLabel("API token").fill(TOKEN);
    await page.getByRole("button", { name: "Use" }).click();
    await page.getByRole("link", { name: "counter" }).click();
    const sp = page.locator('tr[data-pv="SETPOINT"]');
    await sp.waitFor({ timeout: WAIT });
    await sp.locator('[data-field="value"]', { hasText: /^1\.50$/ }).waitFor({ timeout: WAIT });
    const input = page.locator('input[data-pv-input="SETPOINT"]');
    await input.waitFor({ timeout: WAIT }); // appears once the server says it is writable
    await input.fill("7.25");
    await input.press("Enter");
    await page
      .locator('tr[data-pv="OUT"] [data-field="value"]', { hasText: /^14\.5$/ })
      .waitFor({ timeout: WAIT });
    const r = await py(`out(get("BR:COUNTER:SETPOINT"))`, srv.caEnv);
    expect(r.result).toBe(7.25);
    // The plugin's log lines are there, and its screen preview.
    await page.locator("ol.logs li").first().waitFor({ timeout: WAIT });
    await page.locator(".bob .w-textentry").first().waitFor({ timeout: WAIT });
    await shot("plugin");
  }, 120_000);

  test("add a job from git and see it appear; a refused add shows its failing step", async () => {
    await page.getByRole("link", { name: "Add", exact: true }).click();
    await page.getByLabel("job").check();
    await page.getByLabel("Name").fill("diag");
    await page.getByLabel("Git URL").fill(repo.url);
    await page.getByLabel("Path").fill("diag");
    await page.getByLabel("Parameters (JSON object)").fill('{"who": "browser"}');
    await page.getByRole("button", { name: "Add job" }).click();
    await page.locator('[data-outcome="ok"]').waitFor({ timeout: 120_000 });
    await shot("add-ok");

    await page.getByLabel("task").check();
    await page.getByLabel("Name").fill("broken");
    await page.getByLabel("Path").fill("broken");
    await page.getByLabel("Parameters (JSON object)").fill("");
    await page.getByRole("button", { name: "Add task" }).click();
    await page.locator('[data-outcome="failed"]').waitFor({ timeout: 120_000 });
    expect(await page.locator('[data-field="failed-step"] strong').textContent()).toBe("start");
    expect(await page.locator('[data-step="start"]').textContent()).toContain("sensor not found");
    await shot("add-refused");

    // Live progress: the steps before `start` show while initialize() waits for the gate.
    const gate = join(dirs.root, "console-gate");
    await page.getByLabel("Name").fill("gated");
    await page.getByLabel("Path").fill("gated");
    await page.getByLabel("Parameters (JSON object)").fill(JSON.stringify({ gate }));
    await page.getByRole("button", { name: "Add task" }).click();
    await page.locator('[data-live-steps] [data-step="pvs"].ok').waitFor({ timeout: 120_000 });
    expect(await page.locator("[data-outcome]").count()).toBe(0);
    expect(await page.locator('[data-live-steps] [data-step="clone"]').textContent()).toContain(
      "clone",
    );
    await shot("add-progress");
    await writeFile(gate, "go");
    await page.locator('[data-outcome="ok"]').waitFor({ timeout: 120_000 });

    await page.getByRole("link", { name: "Plugins" }).click();
    await page.locator('tr[data-plugin="diag"]').waitFor({ timeout: WAIT });
    expect(await page.locator('tr[data-plugin="broken"]').count()).toBe(0);
  }, 300_000);

  test("run a job and see its result, kept", async () => {
    await page.getByRole("link", { name: "diag" }).click();
    await page.getByRole("button", { name: "Run job" }).click();
    const result = page.locator('[data-field="job-result"]', { hasText: /^Succeeded/ });
    await result.waitFor({ timeout: 120_000 });
    expect(await result.textContent()).toContain('"who":"browser"');
    await page.locator("ol.results li").first().waitFor({ timeout: WAIT });
    expect(await page.locator("ol.results li").first().textContent()).toContain("Diagnostics OK");
    await shot("job");
  }, 180_000);

  test("remove a plugin", async () => {
    await page.goto(`${origin}/#/plugin/counter`);
    await page.locator('[data-action="remove"]').click();
    await page.locator('tr[data-plugin="diag"]').waitFor({ timeout: WAIT });
    await waitFor("counter gone from the list", async () =>
      (await page.locator('tr[data-plugin="counter"]').count()) === 0 ? true : undefined,
    );
    const r = await py(`out(absent("BR:COUNTER:SETPOINT"))`, srv.caEnv);
    expect(r.result).toBe(true);
    expect((await srv.api("GET", "/tasks/counter")).status).toBe(404);
  }, 120_000);

  test("keyboard and labels: skip link first, every control has an accessible name", async () => {
    for (const hash of ["#/", "#/plugin/diag", "#/add"]) {
      await page.goto(`${origin}/${hash}`);
      await page.reload(); // a fresh document: nothing focused yet
      await page.locator("main h1").first().waitFor({ timeout: WAIT });
      await page.keyboard.press("Tab");
      expect(await page.evaluate("document.activeElement?.textContent")).toBe("Skip to content");
      await page.keyboard.press("Enter");
      expect(await page.evaluate("document.activeElement?.id")).toBe("main");
      const tree = await page.locator("body").ariaSnapshot();
      // A control without a quoted name is one a screen reader cannot announce.
      const unnamed = tree
        .split("\n")
        .filter((l) => /- (button|textbox|combobox|spinbutton|radio|checkbox|link)\b/.test(l))
        .filter((l) => !/- \w+ "[^"]+"/.test(l));
      expect([hash, unnamed]).toEqual([hash, []]);
    }
  }, 120_000);

  test("the docs page renders with the network closed", async () => {
    await page.goto(`${origin}/api/v1/docs`);
    // The viewer rendered the spec: its title and an operation from openapi.json are on screen.
    await page.getByText("iocmng REST API").first().waitFor({ timeout: 60_000 });
    await page.getByText("Liveness and plugin counts").first().waitFor({ timeout: WAIT });
    await shot("docs");
  }, 90_000);

  test("nothing left the server", () => {
    expect(outbound).toEqual([]);
  }, 120_000);
});
