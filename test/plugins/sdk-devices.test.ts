import { expect, test } from "bun:test";
import { runLifecycle } from "../../packages/sdk/src/testing.ts";
import { JobBase, JobResult } from "../../src/sdk/index.ts";

class UsesDevices extends JobBase {
  async initialize() {}
  async execute() {
    this.getDevice("m1");
    return JobResult.ok(null, "unreachable");
  }
}

test("getDevice with the device layer off says how to turn it on", async () => {
  const run = await runLifecycle(UsesDevices);
  expect(run.result?.success).toBe(false);
  // The layer is off by default (as in the Python original): the message must name the switch.
  expect(run.result?.message).toContain("IOCMNG_DISABLE_DEVICES=false");
  expect(run.result?.message).toContain("IOCMNG_BEAMLINE_CONFIG");
});
