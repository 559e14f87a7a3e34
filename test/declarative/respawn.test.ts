/**
 * A declarative plugin whose process ends by itself is restarted with its declarative spec: the
 * restarted process runs its transforms again, as the first one did.
 */
import { afterEach, expect, test } from "bun:test";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, waitFor } from "../plugins/harness.ts";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const EXIT = "(process as unknown as { reallyExit(c: number): void }).reallyExit";

test("a crashed declarative plugin is restarted with its transforms running", async () => {
  const e: Env = await makeEnv({
    timings: { restartBaseMs: 50, restartMaxMs: 400, quarantineAfter: 3 },
  });
  cleanups.push(() => destroyEnv(e));
  // The first process sees its transform run (OUT = 2), then zeroes OUT and crashes once; only
  // the transforms of a restarted process can bring OUT back to 2.
  const r: TestRepo = await createRepo({
    files: {
      "t.ts": `import { DeclarativeTask } from "iocmng";
let crashing = false;
export class Once extends DeclarativeTask {
  async execute() {
    if (crashing) return;
    await super.execute();
    if (this.getPv("CRASHED") === 0 && this.getPv("OUT") === 2) {
      crashing = true;
      this.setPv("CRASHED", 1);
      this.setPv("OUT", 0);
      setTimeout(() => ${EXIT}(9), 200);
    }
  }
}
`,
      "config.yaml": `parameters: {interval: 0.05}
arguments:
  outputs:
    OUT: {type: int, value: 0}
    CRASHED: {type: int, value: 0}
transforms: [{output: OUT, expression: "1 + 1"}]
`,
    },
  });
  cleanups.push(() => r.cleanup());
  const added = await e.controller.add({ name: "once", kind: "task", git_url: r.url });
  expect(added.ok).toBe(true);
  await waitFor(() => pvValue(e, "TEST:ONCE:CRASHED") === 1, "the crash");
  await waitFor(
    () => e.logs.some((l) => l.includes("plugin process restarted")),
    "the restarted process",
  );
  await waitFor(() => pvValue(e, "TEST:ONCE:OUT") === 2, "the restarted process's transform");
  expect(e.controller.get("task", "once")?.status).toBe("RUN");
});
