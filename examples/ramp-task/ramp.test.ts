import { expect, test } from "bun:test";
import { runLifecycle } from "iocmng/testing";
import { Ramp } from "./ramp.ts";

test("READING ramps toward SETPOINT at rate × interval per cycle, then reports AT_SETPOINT", async () => {
  const run = await runLifecycle(Ramp, {
    parameters: { rate: 2, interval: 0.5 },
    pvs: { SETPOINT: 2.5, READING: 0, AT_SETPOINT: 1 },
    cycles: 3,
  });
  expect(run.error).toBeUndefined();
  expect(run.history.READING).toEqual([0, 1, 2, 2.5]);
  expect(run.history.AT_SETPOINT).toEqual([1, 0, 0, 1]);
  expect(run.pvs.CYCLE_COUNT).toBe(3);
  expect(run.pvs.STATUS).toBe("END");
});

test("an operator write is checked by onPvWrite", async () => {
  const run = await runLifecycle(Ramp, {
    pvs: { SETPOINT: 0, READING: 0, AT_SETPOINT: 1 },
    cycles: 1,
    beforeCycle: (_, op) => op.write("SETPOINT", "not a number"),
  });
  expect(run.error?.phase).toBe("write");
  expect(run.error?.message).toBe("SETPOINT must be a finite number");
  expect(run.pvs.SETPOINT).toBe(0);
});
