/**
 * Devices inside a plugin: the runtime builds the device registry in the plugin's Worker from the
 * beamline values, and a job moves a motor (simulated on our CA server) through getDevice().
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { join } from "node:path";
import { parse } from "yaml";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue } from "../plugins/harness.ts";
import { simulateMotor } from "./sim.ts";

setDefaultTimeout(120_000);

const values = parse(
  await Bun.file(join(import.meta.dir, "fixtures", "beamline-values.yaml")).text(),
) as Record<string, unknown>;

let ca: CaHarness;
let env: Env;
let repo: TestRepo | undefined;
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  ca = await startCaServer();
  simulateMotor(ca.registry, "TBL:MOT:M1");
  // The plugin's Worker inherits the environment; libca reads EPICS_CA_* at context creation.
  for (const [k, v] of Object.entries(ca.env)) {
    if (!k.startsWith("EPICS_")) continue;
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  env = await makeEnv({
    registry: ca.registry,
    config: { beamlineValues: values, disableDevices: false },
  });
});

afterAll(async () => {
  await destroyEnv(env);
  await ca.stop();
  await repo?.cleanup();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

test("a job lists devices and moves a motor with getDevice()", async () => {
  repo = await createRepo({
    files: {
      "mover.ts": `import { JobBase, JobResult } from "iocmng";
interface Motor { moveTo(p: number | string, o?: { wait?: boolean; timeout?: number }): Promise<void>; readback(): Promise<number> }
export class Mover extends JobBase {
  initialize(): void {}
  async execute(): Promise<JobResult> {
    const m = this.getDevice("M1") as Motor;
    await m.moveTo("in", { wait: true, timeout: 60 });
    const pos = await m.readback();
    const diag = this.getDevicesByType("diag").map((d) => (d as { name: string }).name);
    return JobResult.ok({ pos, devices: this.listDevices().length, diag }, "moved");
  }
}
`,
    },
  });
  expect((await env.controller.add({ name: "mover", kind: "job", git_url: repo.url })).ok).toBe(
    true,
  );
  const r = await env.controller.runJob("mover");
  expect(r.ok).toBe(true);
  if (r.ok) {
    expect(r.value.data).toEqual({
      pos: 12.5,
      devices: 9,
      diag: ["BPM1", "BPM2", "orbit", "bpm02_BPM1"],
    });
  }
  expect(pvValue(env, "TBL:MOT:M1.RBV")).toBe(12.5);
  expect((await env.controller.remove("job", "mover")).ok).toBe(true);
});
