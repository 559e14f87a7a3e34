import { describe, expect, test } from "bun:test";
import { JobBase, JobResult, TaskBase } from "iocmng";
import { runLifecycle } from "iocmng/testing";

class Counter extends TaskBase {
  calls: string[] = [];
  override initialize() {
    this.calls.push("initialize");
  }
  override execute() {
    this.calls.push("execute");
    if (this.parameters.failOn === this.cycleCount) throw new Error("boom at cycle");
    this.setPv("COUNT", Number(this.getPv("COUNT")) + 1);
  }
  override cleanup() {
    this.calls.push("cleanup");
  }
}

describe("runLifecycle (tasks)", () => {
  test("initialize, execute × cycles, cleanup; defaults and CYCLE_COUNT as on the server", async () => {
    const run = await runLifecycle(Counter, { name: "ctr", pvs: { COUNT: 0 }, cycles: 3 });
    expect(run.plugin.calls).toEqual(["initialize", "execute", "execute", "execute", "cleanup"]);
    expect(run.plugin.name).toBe("ctr");
    expect(run.plugin.prefix).toBe("CTR");
    expect(run.pvs.COUNT).toBe(3);
    expect(run.pvs.CYCLE_COUNT).toBe(3);
    expect(run.plugin.cycleCount).toBe(3);
    expect(run.history.STATUS).toEqual(["INIT", "RUN", "END"]);
    expect(run.pvs.ENABLE).toBe(1);
    expect(run.error).toBeUndefined();
  });

  test("a throwing execute is recorded (STATUS ERROR, MESSAGE ≤ 39 bytes) and the loop goes on", async () => {
    const run = await runLifecycle(Counter, {
      parameters: { failOn: 1 },
      pvs: { COUNT: 0 },
      cycles: 3,
    });
    expect(run.error).toMatchObject({ phase: "execute", cycle: 1, message: "boom at cycle" });
    expect(run.cycles).toBe(2);
    expect(run.pvs.COUNT).toBe(2);
    expect(run.pvs.CYCLE_COUNT).toBe(3);
    expect(run.history.STATUS).toEqual(["INIT", "RUN", "ERROR", "RUN", "END"]);
    expect(run.history.MESSAGE).toContain("boom at cycle");
  });

  test("setPv on an undeclared PV is an error naming it", async () => {
    const run = await runLifecycle(Counter, { cycles: 1 });
    expect(run.error?.message).toContain('unknown PV "COUNT"');
  });

  test("declaring a default PV, or a class that is not a plugin, is refused", async () => {
    await expect(runLifecycle(Counter, { pvs: { STATUS: 1 } })).rejects.toThrow(
      '"STATUS" is a default PV of every task',
    );
    class NotAPlugin {}
    // @ts-expect-error: the type system already refuses it; the harness refuses it at run time too.
    await expect(runLifecycle(NotAPlugin)).rejects.toThrow("does not extend TaskBase or JobBase");
  });

  test("an operator write goes through onPvWrite, which may refuse it", async () => {
    class Guarded extends Counter {
      override onPvWrite(name: string, value: unknown) {
        if (Number(value) < 0) throw new Error(`${name} must be >= 0`);
      }
    }
    const run = await runLifecycle(Guarded, {
      pvs: { COUNT: 0, LIMIT: 5 },
      cycles: 2,
      beforeCycle: (i, op) => op.write("LIMIT", i === 0 ? 7 : -1),
    });
    expect(run.pvs.LIMIT).toBe(7);
    expect(run.errors).toHaveLength(1);
    expect(run.error).toMatchObject({ phase: "write", cycle: 1, message: "LIMIT must be >= 0" });
  });
});

describe("runLifecycle (jobs)", () => {
  class Adder extends JobBase {
    override initialize() {}
    override execute() {
      const n = Number(this.parameters.n);
      if (n < 0) throw new Error("n must be >= 0");
      this.setPv("SUM", (n * (n + 1)) / 2);
      return JobResult.ok({ n }, "added");
    }
  }

  test("one run; STATUS SUCCESS, MESSAGE, result", async () => {
    const run = await runLifecycle(Adder, { parameters: { n: 4 }, pvs: { SUM: 0 } });
    expect(run.result).toBeInstanceOf(JobResult);
    expect(run.result?.success).toBe(true);
    expect(run.result?.data).toEqual({ n: 4 });
    expect(run.pvs.SUM).toBe(10);
    expect(run.history.STATUS).toEqual(["IDLE", "RUNNING", "SUCCESS"]);
    expect(run.pvs.MESSAGE).toBe("added");
  });

  test("a thrown error becomes a failed result, not an exception", async () => {
    const run = await runLifecycle(Adder, { parameters: { n: -1 }, pvs: { SUM: 0 } });
    expect(run.result?.success).toBe(false);
    expect(run.result?.message).toBe("n must be >= 0");
    expect(run.pvs.STATUS).toBe("FAILED");
  });
});
