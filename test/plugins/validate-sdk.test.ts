/**
 * validatePluginSource (the `iocmng validate` pipeline without a server) and the SDK used outside
 * the server (plugin authors' unit tests).
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JobBase, JobResult, LocalHost, TaskBase, toJobResult } from "iocmng";
import { validatePluginSource } from "../../src/plugins/controller.ts";
import { constructWithContext } from "../../src/sdk/host.ts";
import { createRepo } from "../helpers/git-repo.ts";
import { fixtureFiles } from "./harness.ts";

setDefaultTimeout(60_000);

const FIXTURES = join(import.meta.dir, "..", "fixtures", "plugins");

test("validate a local task and job directory; the kind is detected", async () => {
  const t = await validatePluginSource({ dir: join(FIXTURES, "counter") });
  expect(t.ok).toBe(true);
  expect(t.kind).toBe("task");
  expect(t.steps.map((s) => s.step)).toEqual([
    "path",
    "config",
    "dependencies",
    "syntax",
    "import",
    "inheritance",
    "abstract",
    "pvs",
  ]);
  const j = await validatePluginSource({ dir: join(FIXTURES, "job") });
  expect(j.ok).toBe(true);
  expect(j.kind).toBe("job");
  // The abstract step names the class and what it implements.
  expect(t.steps.find((s) => s.step === "abstract")?.message).toBe(
    "Counter implements initialize(), execute(), cleanup()",
  );
  expect(j.steps.find((s) => s.step === "abstract")?.message).toBe(
    "Diagnostics implements initialize(), execute()",
  );
});

test("validate with the wrong kind names the inheritance step", async () => {
  const r = await validatePluginSource({ dir: join(FIXTURES, "job"), kind: "task" });
  expect(r.ok).toBe(false);
  expect(r.failedStep).toBe("inheritance");
});

test("validate a git URL with a path and a branch; a temp clone is not left behind", async () => {
  const repo = await createRepo({
    files: { "README.md": "x\n" },
    branches: { plugins: await fixtureFiles("triggered", "sub/trig") },
  });
  const temps = async () =>
    (await readdir(tmpdir())).filter((n) => n.startsWith("iocmng-validate-")).length;
  const before = await temps();
  try {
    const ok = await validatePluginSource({
      git_url: repo.url,
      branch: "plugins",
      path: "sub/trig",
    });
    expect(ok.ok).toBe(true);
    const bad = await validatePluginSource({ git_url: repo.url, path: "sub/trig" });
    expect(bad.ok).toBe(false);
    expect(bad.failedStep).toBe("path");
    const hostile = await validatePluginSource({ git_url: "ext::sh -c id" });
    expect(hostile.failedStep).toBe("request");
    expect(await temps()).toBe(before);
  } finally {
    await repo.cleanup();
  }
});

test("validate reports syntax errors with file and line", async () => {
  const dir = await mkdtemp(join(tmpdir(), "iocmng-val-"));
  try {
    await writeFile(join(dir, "p.ts"), "export class {\n");
    const r = await validatePluginSource({ dir });
    expect(r.failedStep).toBe("syntax");
    expect(r.message).toMatch(/p\.ts:\d+/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

class Demo extends TaskBase {
  initialize(): void {}
  execute(): void {
    this.setPv("OUT", Number(this.getPv("OUT")) + 1);
    this.setMessage("a message that is far longer than thirty-nine bytes for sure");
  }
  cleanup(): void {}
}

test("SDK outside the server: an in-memory host, parameters and context", async () => {
  const host = new LocalHost({ OUT: 1, MESSAGE: "", STATUS: 0 });
  const d = constructWithContext(Demo, {
    name: "demo",
    kind: "task",
    prefix: "BL:NS:DEMO",
    parameters: { mode: "triggered", interval: 2 },
    mode: "triggered",
    interval: 2,
    host,
  });
  expect(d.name).toBe("demo");
  expect(d.prefix).toBe("BL:NS:DEMO");
  expect(d.mode).toBe("triggered");
  expect(d.interval).toBe(2);
  d.execute();
  expect(host.values.get("OUT")).toBe(2);
  expect(new TextEncoder().encode(String(host.values.get("MESSAGE"))).length).toBeLessThanOrEqual(
    39,
  );
  expect(() => d.setPv("NOPE", 1)).toThrow("unknown PV");
  expect(() => d.setStatus("BOGUS" as "RUN")).toThrow("unknown task status");
  d.setStatus("PAUSED");
  expect(host.values.get("STATUS")).toBe("PAUSED");
  await d.addPv("NEW", { kind: "double", initial: 3 });
  expect(d.getPv("NEW")).toBe(3);
  // Without a runtime, services say clearly they are missing.
  expect(() => d.ca).toThrow("not available");
  expect(() => d.getDevice("m1")).toThrow("not available");
  // A bare construction works too (defaults), for quick author tests.
  const bare = new Demo();
  expect(bare.name).toBe("Demo");
  expect(bare.mode).toBe("continuous");
});

test("JobResult and toJobResult", () => {
  const r = new JobResult({ success: true, data: { a: 1 }, message: "ok" });
  expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
  expect(toJobResult(r)).toBe(r);
  expect(toJobResult({ success: true, data: 1, message: "m" })).toMatchObject({
    success: true,
    data: 1,
    message: "m",
  });
  expect(toJobResult({ success: "yes" })).toMatchObject({ success: false });
  expect(toJobResult(undefined).success).toBe(false);
  expect(toJobResult(undefined).message).toContain("returned nothing");
  expect(JobResult.fail("x").success).toBe(false);
  class J extends JobBase {
    initialize(): void {}
    execute(): JobResult {
      return JobResult.ok({ n: 1 });
    }
  }
  expect(new J().execute().data).toEqual({ n: 1 });
});
