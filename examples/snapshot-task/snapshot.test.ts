import { expect, test } from "bun:test";
import { runLifecycle } from "iocmng/testing";
import { Snapshot } from "./snapshot.ts";

const PVS = { GAIN: 1, SAMPLES: [], MEAN: 0, QUALITY: "UNKNOWN" };

test("one trigger publishes `samples` readings, their mean and a GOOD grade", async () => {
  const run = await runLifecycle(Snapshot, {
    parameters: { mode: "triggered", samples: 4 },
    pvs: PVS,
  });
  expect(run.error).toBeUndefined();
  const samples = run.pvs.SAMPLES as number[];
  expect(samples).toHaveLength(4);
  expect(run.pvs.MEAN).toBeCloseTo(samples.reduce((a, b) => a + b, 0) / 4, 9);
  expect(run.pvs.QUALITY).toBe("GOOD");
  expect(run.pvs.MESSAGE).toBe("snapshot 1: 4 samples");
});

test("GAIN written by an operator scales the next snapshot", async () => {
  const run = await runLifecycle(Snapshot, {
    parameters: { samples: 4 },
    pvs: PVS,
    cycles: 1,
    beforeCycle: (_, op) => op.write("GAIN", 3),
  });
  expect(run.pvs.MEAN as number).toBeGreaterThan(25);
});
