/**
 * Every step of the loader pipeline fails with its name and a precise message, and leaves nothing
 * behind: no PVs, no worker, no clone directory, and the name is free again.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PluginProcess } from "../../src/plugins/host/process-host.ts";
import { createRepo, type RepoFile, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, fixtureFiles, makeEnv } from "./harness.ts";

let env: Env;
const repos: TestRepo[] = [];
let counterFiles: Record<string, RepoFile>;

beforeAll(async () => {
  env = await makeEnv();
  counterFiles = await fixtureFiles("counter");
});
afterAll(async () => {
  await destroyEnv(env);
  for (const r of repos) await r.cleanup();
});

async function repo(
  files: Record<string, RepoFile>,
  extra: Partial<Parameters<typeof createRepo>[0]> = {},
) {
  const r = await createRepo({ files, ...extra });
  repos.push(r);
  return r;
}

/** Asserts the failure names `step` and that nothing of plugin `name` remains. */
async function expectFailureLeavesNothing(
  name: string,
  req: Partial<Parameters<Env["controller"]["add"]>[0]> & { git_url: string },
  step: string,
  messagePart: string | RegExp,
  code = 422,
) {
  const before = PluginProcess.live;
  const r = await env.controller.add({ ...req, name, kind: "task" });
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.code as number).toBe(code);
  expect(r.validation?.failedStep).toBe(step);
  if (typeof messagePart === "string") expect(r.message).toContain(messagePart);
  else expect(r.message).toMatch(messagePart);
  // Nothing left behind.
  const prefix = `TEST:${name.toUpperCase()}:`;
  expect([...env.registry.names()].filter((n) => n.startsWith(prefix))).toEqual([]);
  expect(PluginProcess.live).toBe(before);
  expect(existsSync(join(env.config.pluginsDir, name))).toBe(false);
  expect(env.controller.get("task", name)).toBeUndefined();
  expect(env.controller.list("task").map((p) => p.name)).not.toContain(name);
  return r;
}

describe("request step (400)", () => {
  test("bad names are refused", async () => {
    for (const name of ["", "a b", "../x", "x".repeat(129), "é", "a/b", "-"]) {
      const r = await env.controller.add({
        name: name === "-" ? "a;b" : name,
        kind: "task",
        git_url: "file:///tmp/x",
      });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.code).toBe(400);
    }
  });
  test("hostile git URLs are refused before anything runs", async () => {
    for (const url of [
      "ext::sh -c touch% /tmp/pwned",
      "fd::17",
      "--upload-pack=touch /tmp/pwned",
      "-u foo",
      "http://example.com/repo.git",
      "https://user:secret@example.com/repo.git",
      "ftp://example.com/repo",
      "file:///tmp/a b",
      "https://example.com/repo\n--foo",
      "",
      "relative/path",
    ]) {
      const r = await env.controller.add({ name: "hostile", kind: "task", git_url: url });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe(400);
        expect(r.validation?.failedStep).toBe("request");
      }
    }
    expect(existsSync(join(env.config.pluginsDir, "hostile"))).toBe(false);
  });
  test("bad branch, parameters, auto_start are refused", async () => {
    const base = { name: "x1", kind: "task" as const, git_url: "file:///tmp/none" };
    for (const extra of [
      { branch: "--orphan" },
      { branch: "a..b" },
      { branch: "x y" },
      { parameters: [] as unknown as Record<string, unknown> },
      { auto_start: "yes" as unknown as boolean },
      { pat_env: "1BAD" },
    ]) {
      const r = await env.controller.add({ ...base, ...extra });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.code).toBe(400);
    }
  });
});

describe("each failing step leaves nothing behind (422)", () => {
  test("clone: repository does not exist", async () => {
    await expectFailureLeavesNothing(
      "c1",
      { git_url: "file:///nonexistent/repo" },
      "clone",
      "git clone failed",
    );
  });
  test("clone: branch does not exist", async () => {
    const r = await repo(counterFiles);
    await expectFailureLeavesNothing("c2", { git_url: r.url, branch: "nope" }, "clone", "nope");
  });
  test("path: does not exist", async () => {
    const r = await repo(counterFiles);
    await expectFailureLeavesNothing(
      "p1",
      { git_url: r.url, path: "missing/dir" },
      "path",
      "does not exist",
    );
  });
  test("path: .. and absolute", async () => {
    const r = await repo(counterFiles);
    await expectFailureLeavesNothing("p2", { git_url: r.url, path: "../.." }, "path", '".."');
    await expectFailureLeavesNothing("p3", { git_url: r.url, path: "/etc" }, "path", "relative");
  });
  test("path: a symlink leading outside the clone", async () => {
    const r = await repo({ ...counterFiles, escape: { symlink: "/etc" } });
    await expectFailureLeavesNothing("p4", { git_url: r.url, path: "escape" }, "path", "outside");
  });
  test("path: config.yaml or an entry module symlinked outside the clone is not read", async () => {
    // A file outside the clone whose text would show up in a YAML error if it were parsed.
    const outside = join(env.root, "outside-secret.txt");
    await Bun.write(outside, "not-for-plugins: [\n");
    const { "config.yaml": _c, ...noConfig } = counterFiles;
    const r1 = await repo({ ...noConfig, "config.yaml": { symlink: outside } });
    const res = await expectFailureLeavesNothing(
      "ln1",
      { git_url: r1.url },
      "path",
      "config.yaml leads outside the repository (symlink)",
    );
    expect(JSON.stringify(res)).not.toContain("not-for-plugins");
    const r2 = await repo({
      "config.yaml": counterFiles["config.yaml"] as RepoFile,
      "index.ts": { symlink: join(import.meta.dir, "../fixtures/plugins/counter/counter.ts") },
    });
    await expectFailureLeavesNothing(
      "ln2",
      { git_url: r2.url },
      "import",
      "index.ts leads outside",
    );
    // A symlink that stays inside the repository is fine.
    const r3 = await repo({
      ...noConfig,
      "shared.yaml": counterFiles["config.yaml"] as RepoFile,
      "config.yaml": { symlink: "shared.yaml" },
    });
    const ok = await env.controller.add({ name: "ln3", kind: "task", git_url: r3.url });
    expect(ok.ok).toBe(true);
    expect((await env.controller.remove("task", "ln3")).ok).toBe(true);
  });
  test("config: invalid config.yaml names the file and field", async () => {
    const r = await repo({ ...counterFiles, "config.yaml": "parameters:\n  mode: sometimes\n" });
    await expectFailureLeavesNothing("cf1", { git_url: r.url }, "config", /config\.yaml.*mode/);
  });
  test("config: a PV clashing with a default PV", async () => {
    const r = await repo({
      ...counterFiles,
      "config.yaml": "pvs:\n  outputs:\n    STATUS:\n      type: int\n",
    });
    await expectFailureLeavesNothing("cf2", { git_url: r.url }, "config", "STATUS");
  });
  test("dependencies: an uninstallable dependency", async () => {
    const r = await repo({
      ...counterFiles,
      "package.json": JSON.stringify({
        name: "p",
        dependencies: { "missing-dep": "file:./does-not-exist" },
      }),
    });
    await expectFailureLeavesNothing("d1", { git_url: r.url }, "dependencies", "install failed");
  });
  test("syntax: a file that does not parse names file and line", async () => {
    const r = await repo({
      ...counterFiles,
      "broken.ts": "export const x = 1;\nexport function f( {\n",
    });
    await expectFailureLeavesNothing("s1", { git_url: r.url }, "syntax", /broken\.ts:\d+/);
  });
  test("import: a module that throws while loading", async () => {
    const r = await repo({
      ...counterFiles,
      "index.ts": 'export * from "./counter.ts";\nthrow new Error("boom at import");\n',
    });
    await expectFailureLeavesNothing("i1", { git_url: r.url }, "import", "boom at import");
  });
  test("import: a missing module", async () => {
    const r = await repo({ ...counterFiles, "index.ts": 'export * from "./nope.ts";\n' });
    await expectFailureLeavesNothing("i2", { git_url: r.url }, "import", "nope");
  });
  test("inheritance: no class derives from TaskBase", async () => {
    const r = await repo({ "index.ts": "export class NotAPlugin { execute() {} }\n" });
    await expectFailureLeavesNothing("h1", { git_url: r.url }, "inheritance", "TaskBase");
  });
  test("inheritance: a job repo added as a task is refused", async () => {
    const r = await repo(await fixtureFiles("job"));
    await expectFailureLeavesNothing("h2", { git_url: r.url }, "inheritance", "add it as a job");
  });
  test("inheritance: a task repo added as a job is refused", async () => {
    const r = await repo(counterFiles);
    const res = await env.controller.add({ name: "h3", kind: "job", git_url: r.url });
    expect(res.ok).toBe(false);
    if (!res.ok) {
      expect(res.validation?.failedStep).toBe("inheritance");
      expect(res.message).toContain("add it as a task");
    }
    expect(env.controller.get("job", "h3")).toBeUndefined();
    expect([...env.registry.names()].filter((n) => n.startsWith("TEST:H3:"))).toEqual([]);
  });
  test("inheritance: two plugin classes are ambiguous", async () => {
    const src =
      'import { TaskBase } from "iocmng";\nclass B extends TaskBase { initialize() {} execute() {} cleanup() {} }\nexport class One extends B {}\nexport class Two extends B {}\n';
    const r = await repo({ "index.ts": src });
    await expectFailureLeavesNothing("h4", { git_url: r.url }, "inheritance", "exactly one");
  });
  test("abstract: cleanup() not implemented", async () => {
    const src =
      'import { TaskBase } from "iocmng";\nexport class Half extends TaskBase { initialize() {} execute() {} }\n';
    const r = await repo({ "index.js": src });
    await expectFailureLeavesNothing(
      "a1",
      { git_url: r.url },
      "abstract",
      "abstract: Half does not implement cleanup()",
    );
  });
  test("pvs: a PV name already served by someone else", async () => {
    env.registry.add({ name: "TEST:PV1:VALUE", kind: "double" });
    try {
      const r = await repo(counterFiles);
      const res = await expectFailureLeavesNothingExcept("pv1", r.url, "TEST:PV1:VALUE");
      expect(res).toContain("already exists");
    } finally {
      env.registry.remove("TEST:PV1:VALUE");
    }
  });
  test("start: initialize() throwing", async () => {
    const src =
      'import { TaskBase } from "iocmng";\nexport class Bad extends TaskBase { initialize() { throw new Error("no hardware"); } execute() {} cleanup() {} }\n';
    const r = await repo({ "index.ts": src });
    await expectFailureLeavesNothing("st1", { git_url: r.url }, "start", "no hardware");
  });
  test("start: PVs added by initialize() before it throws are removed too", async () => {
    const src =
      'import { TaskBase } from "iocmng";\nexport class Bad extends TaskBase { async initialize() { await this.addPv("DYN", { kind: "double" }); throw new Error("late failure"); } execute() {} cleanup() {} }\n';
    const r = await repo({ "index.ts": src });
    await expectFailureLeavesNothing("st2", { git_url: r.url }, "start", "late failure");
  });
  test("the name is free after a failure: the same name loads a good plugin", async () => {
    const r = await repo(counterFiles);
    const ok = await env.controller.add({ name: "c1", kind: "task", git_url: r.url });
    expect(ok.ok).toBe(true);
    if (ok.ok)
      expect(ok.validation?.steps.map((s) => s.step)).toEqual([
        "clone",
        "path",
        "config",
        "dependencies",
        "syntax",
        "import",
        "inheritance",
        "abstract",
        "pvs",
        "start",
      ]);
    if (ok.ok)
      expect(ok.validation?.steps.find((s) => s.step === "abstract")?.message).toBe(
        "Counter implements initialize(), execute(), cleanup()",
      );
    expect((await env.controller.remove("task", "c1")).ok).toBe(true);
    expect(readdirSync(env.config.pluginsDir)).not.toContain("c1");
  });
});

async function expectFailureLeavesNothingExcept(
  name: string,
  url: string,
  foreign: string,
): Promise<string> {
  const before = PluginProcess.live;
  const r = await env.controller.add({ name, kind: "task", git_url: url });
  expect(r.ok).toBe(false);
  if (r.ok) return "";
  expect(r.validation?.failedStep).toBe("pvs");
  const left = [...env.registry.names()].filter((n) => n.startsWith(`TEST:${name.toUpperCase()}:`));
  expect(left).toEqual([foreign]);
  expect(PluginProcess.live).toBe(before);
  expect(existsSync(join(env.config.pluginsDir, name))).toBe(false);
  return r.message;
}

test("duplicate names: 409, case-insensitively", async () => {
  const r = await repo(counterFiles);
  expect((await env.controller.add({ name: "dup", kind: "task", git_url: r.url })).ok).toBe(true);
  for (const name of ["dup", "DUP"]) {
    const again = await env.controller.add({ name, kind: "task", git_url: r.url });
    expect(again.ok).toBe(false);
    if (!again.ok) expect(again.code).toBe(409);
  }
  const asJob = await env.controller.add({ name: "dup", kind: "job", git_url: r.url });
  expect(asJob.ok).toBe(false);
  if (!asJob.ok) expect(asJob.code).toBe(409);
  expect((await env.controller.remove("task", "dup")).ok).toBe(true);
  const gone = await env.controller.remove("task", "dup");
  expect(gone.ok).toBe(false);
  if (!gone.ok) expect(gone.code).toBe(404);
});

test("a file: dependency is installed by the running executable and usable", async () => {
  const r = await repo({
    "package.json": JSON.stringify({
      name: "withdep",
      dependencies: { "local-helper": "file:./vendor/local-helper" },
    }),
    "vendor/local-helper/package.json": JSON.stringify({
      name: "local-helper",
      version: "1.0.0",
      main: "index.js",
    }),
    "vendor/local-helper/index.js": "module.exports.answer = () => 42;\n",
    "plugin.ts":
      'import { TaskBase } from "iocmng";\nimport { answer } from "local-helper";\nexport class WithDep extends TaskBase { initialize() {} execute() { this.setPv("ANSWER", answer()); } cleanup() {} }\n',
    "config.yaml":
      "parameters:\n  interval: 0.05\npvs:\n  outputs:\n    ANSWER:\n      type: int\n",
  });
  const res = await env.controller.add({ name: "withdep", kind: "task", git_url: r.url });
  expect(res.ok).toBe(true);
  if (res.ok)
    expect(res.validation?.steps.find((s) => s.step === "dependencies")?.message).toContain(
      "local-helper",
    );
  const { waitFor } = await import("./harness.ts");
  await waitFor(() => env.registry.get("TEST:WITHDEP:ANSWER")?.value === 42, "ANSWER = 42");
  expect((await env.controller.remove("task", "withdep")).ok).toBe(true);
});

test("import: a module that blocks at top level fails the import step after its time limit", async () => {
  const short = await makeEnv({ timings: { importTimeoutMs: 1500 } });
  try {
    const r = await repo({ "index.ts": "while (true) {}\nexport const never = 1;\n" });
    const before = PluginProcess.live;
    const res = await short.controller.add({ name: "blocker", kind: "task", git_url: r.url });
    expect(res.ok).toBe(false);
    if (!res.ok) {
      expect(res.validation?.failedStep).toBe("import");
      expect(res.message).toContain("1500 ms");
    }
    expect(PluginProcess.live).toBe(before);
    expect(existsSync(join(short.config.pluginsDir, "blocker"))).toBe(false);
  } finally {
    await destroyEnv(short);
  }
});
