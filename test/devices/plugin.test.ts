/**
 * Devices inside a plugin: the runtime builds the device registry in the plugin's Worker from the
 * beamline values, and a job moves motors through getDevice(): a motor record simulated on our CA
 * server, and a TML axis simulated by another plugin (its PVs are the axis's PVs, because the
 * plugin prefix is the IOC's `{iocprefix}:{iocroot}`).
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
let simRepo: TestRepo | undefined;
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
    // Plugin PVs are `<prefix>:<NAME>:<PV>`: a plugin named slit1 serves TBL:TML:AXES:SLIT1:RBV,
    // the PVs of device SLIT1 of IOC tml01 in the fixture.
    config: { beamlineValues: values, disableDevices: false, prefix: "TBL:TML:AXES" },
  });
});

afterAll(async () => {
  await destroyEnv(env);
  await ca.stop();
  await repo?.cleanup();
  await simRepo?.cleanup();
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

test("a job moves a TML axis that another plugin simulates, through getDevice()", async () => {
  simRepo = await createRepo({
    files: {
      "config.yaml": `parameters:
  mode: continuous
  interval: 0.01
pvs:
  inputs:
    VAL_SP: { type: float, value: 0 }
    ACT: { type: int, value: 0 }
    ACTX_SP: { type: int, value: 0 }
  outputs:
    RBV: { type: float, value: 0 }
    MSTA: { type: int, value: 0 }
`,
      "axis.ts": `import { TaskBase } from "iocmng";
/** A Technosoft axis: ACT=2 (absolute) then ACTX_SP=1 (run) moves RBV to VAL_SP; MSTA bit 10 = moving. */
export class Axis extends TaskBase {
  private moving = false;
  initialize(): void {}
  onPvWrite(name: string, value: unknown): void {
    if (name !== "ACTX_SP") return;
    if (value === 2) this.moving = false;
    if (value === 1 && Number(this.getPv("ACT")) === 2) this.moving = true;
    this.setPv("MSTA", this.moving ? 0x400 : 0);
  }
  execute(): void {
    if (!this.moving) return;
    const pos = Number(this.getPv("RBV"));
    const target = Number(this.getPv("VAL_SP"));
    const next = Math.abs(target - pos) <= 0.5 ? target : pos + Math.sign(target - pos) * 0.5;
    this.setPv("RBV", next);
    if (next === target) {
      this.moving = false;
      this.setPv("MSTA", 0);
    }
  }
  cleanup(): void {}
}
`,
    },
  });
  const sim = await env.controller.add({ name: "slit1", kind: "task", git_url: simRepo.url });
  expect(sim.ok ? "" : sim.message).toBe("");
  const mover = await createRepo({
    files: {
      "slit.ts": `import { JobBase, JobResult } from "iocmng";
interface Motor { moveTo(p: number, o?: { wait?: boolean; timeout?: number }): Promise<void>; readback(): Promise<number>; kind: string }
export class SlitMover extends JobBase {
  initialize(): void {}
  async execute(): Promise<JobResult> {
    const m = this.getDevice("SLIT1") as Motor;
    await m.moveTo(3, { wait: true, timeout: 60 });
    return JobResult.ok({ kind: m.kind, pos: await m.readback() }, "moved");
  }
}
`,
    },
  });
  try {
    const added = await env.controller.add({ name: "slitmover", kind: "job", git_url: mover.url });
    expect(added.ok ? "" : added.message).toBe("");
    const r = await env.controller.runJob("slitmover");
    expect(r.ok ? r.value.data : r.message).toEqual({ kind: "tml-motor", pos: 3 });
    expect(pvValue(env, "TBL:TML:AXES:SLIT1:RBV")).toBe(3);
    expect(pvValue(env, "TBL:TML:AXES:SLIT1:MSTA")).toBe(0);
    expect((await env.controller.remove("job", "slitmover")).ok).toBe(true);
    expect((await env.controller.remove("task", "slit1")).ok).toBe(true);
  } finally {
    await mover.cleanup();
  }
});
