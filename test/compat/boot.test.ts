/**
 * IOCMNG_PLUGINS_CONFIG (2.7.9's plugins.yaml) on a real server: entries load in autostart_order,
 * the kind comes from the code, auto_start: false loads without starting; a file with `pat:` is
 * refused with the fix and loads nothing; a refused IOCMNG_* value stops the server with its name.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DIAG_JOB } from "../e2e/lib/plugins.ts";
import { makeDirs, spawnServer, startProcess } from "../e2e/lib/server.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";

let repo: TestRepo;
let work: string;
beforeAll(async () => {
  repo = await createRepo({
    files: {
      "mon/config.yaml": "arguments:\n  inputs:\n    SP: {type: float, value: 2}\n",
      ...Object.fromEntries(Object.entries(DIAG_JOB).map(([k, v]) => [`diag/${k}`, v])),
    },
  });
  work = await mkdtemp(join(tmpdir(), "iocmng-boot-"));
});
afterAll(async () => {
  await repo?.cleanup();
  await rm(work, { recursive: true, force: true });
});

test("entries load in order, kinds detected, auto_start false respected", async () => {
  const file = join(work, "plugins.yaml");
  await writeFile(
    file,
    `plugins:
  - {name: zz-last, git_url: "${repo.url}", path: mon, auto_start: false}
  - {name: diag, git_url: "${repo.url}", path: diag, autostart_order: 2}
  - {name: mon, git_url: "${repo.url}", path: mon, autostart_order: 1, parameters: {interval: 0.3}}
`,
  );
  const dirs = await makeDirs();
  const s = await spawnServer(dirs, { env: { IOCMNG_PLUGINS_CONFIG: file } });
  try {
    const order = [...s.output().matchAll(/boot list: (\S+) loaded/g)].map((m) => m[1]);
    expect(order).toEqual(["mon", "diag", "zz-last"]);
    expect(
      ((await s.api("GET", "/plugins/diag")).body as { plugin_type: string }).plugin_type,
    ).toBe("job");
    expect((await s.api("GET", "/plugins/mon")).body).toMatchObject({
      status: "running",
      start_parameters: { interval: 0.3 },
    });
    expect((await s.api("GET", "/plugins/zz-last")).body).toMatchObject({
      status: "loaded",
      auto_start: false,
    });
  } finally {
    await s.kill();
    await dirs.remove();
  }
}, 180_000);

test("a token in the file is refused with the fix; nothing from it loads", async () => {
  const file = join(work, "with-pat.yaml");
  await writeFile(
    file,
    `plugins:\n  - {name: mon, git_url: "${repo.url}", path: mon, pat: ghp_not_here}\n`,
  );
  const dirs = await makeDirs();
  const s = await spawnServer(dirs, { env: { IOCMNG_PLUGINS_CONFIG: file } });
  try {
    expect(s.output()).toContain("pat: a token is not accepted in a file");
    expect(s.output()).toContain("pat_env:");
    expect(s.output()).not.toContain("ghp_not_here");
    expect((await s.api("GET", "/plugins")).body).toEqual({ plugins: [], count: 0 });
  } finally {
    await s.kill();
    await dirs.remove();
  }
}, 120_000);

test("a refused 2.7.9 variable stops the server naming it", async () => {
  const dirs = await makeDirs();
  const p = await startProcess(dirs, { env: { IOCMNG_ENABLE_SOFTIOC: "false" } });
  const code = await p.proc.exited;
  expect(code).not.toBe(0);
  expect(p.output()).toContain("IOCMNG_ENABLE_SOFTIOC=false");
  await dirs.remove();
}, 60_000);
