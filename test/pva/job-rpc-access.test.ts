/**
 * Access security on a job's RPC: running a job by `pvxcall PREFIX:RUN` is a write to the job, so
 * the caller needs WRITE on the job's STATUS PV under the plugin's access group (config.yaml
 * `access.asg`). A real job from a git repo, a runtime with an access security file (IOCMNG_ACF),
 * and our PVA client with `ca` authentication as two different users.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../../src/config.ts";
import { struct } from "../../src/pva/codec/types.ts";
import { buildRuntime, type Runtime } from "../../src/server.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { PvaClient } from "../helpers/pva-client.ts";
import { TEST_TIMINGS } from "../plugins/harness.ts";

const RULES = `
UAG(ops) {operator}
ASG(DEFAULT) { RULE(1, READ) RULE(1, WRITE) }
ASG(JOBS) { RULE(1, READ) RULE(1, WRITE) { UAG(ops) } }
`;
const JOB_TS = `import { JobBase, JobResult } from "iocmng";
export class Guarded extends JobBase {
  private runs = 0;
  initialize(): void {}
  execute(): JobResult {
    this.runs++;
    return JobResult.ok({ runs: this.runs }, "ran");
  }
}
`;

let runtime: Runtime;
let repo: TestRepo;
let dir = "";
const NOARGS = struct("", []);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pva-jobacl-"));
  writeFileSync(join(dir, "rules.acf"), RULES);
  repo = await createRepo({
    files: { "job.ts": JOB_TS, "config.yaml": "access:\n  asg: JOBS\n" },
  });
  const config = loadConfig({
    IOCMNG_STATE_DIR: join(dir, "state"),
    IOCMNG_PLUGINS_DIR: join(dir, "plugins"),
    IOCMNG_PREFIX: "ACLT",
    IOCMNG_ACF: join(dir, "rules.acf"),
  });
  runtime = await buildRuntime(config, pino({ level: "silent" }), {
    env: {
      EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_PVAS_SERVER_PORT: "0",
      EPICS_PVAS_BROADCAST_PORT: "0",
      EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    },
    caConfig: false,
    pvaConfig: {},
    timings: TEST_TIMINGS,
  });
  const r = await runtime.controller.add({ kind: "job", name: "guarded", git_url: repo.url });
  if (!r.ok) throw new Error(`job not loaded: ${r.message}`);
}, 60_000);

afterAll(async () => {
  await runtime?.stop();
  await repo?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test("only a user with WRITE on the job's STATUS may run it; a refusal does not run it", async () => {
  const port = runtime.pva?.tcpPort ?? 0;
  const guest = await PvaClient.connect(port, { auth: "ca", user: "guest", userHost: "console1" });
  const denied = await guest.rpc("ACLT:GUARDED:RUN", NOARGS, {});
  expect(denied.status.type).toBe(2);
  expect(denied.status.message).toContain("access denied");
  const op = await PvaClient.connect(port, { auth: "ca", user: "operator", userHost: "console1" });
  const ok = await op.rpc("ACLT:GUARDED:RUN", NOARGS, {});
  expect(ok.status.type).toBe(0);
  // The guest's call never reached the job: the operator's is its first run.
  expect(ok.value).toMatchObject({ success: true, data: { runs: 1 } });
  guest.close();
  op.close();
});
