/**
 * DeclarativeTask over real Channel Access: our CA server (in this process, random port) serves
 * both the "other IOC" PVs the links point at and the plugin's own PVs; the task reads and writes
 * the links through the libca client (ffi/), exactly as it does inside a plugin Worker. Cycles are
 * driven by calling execute() so no test depends on timing; pyepics reads the served PVs.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parse as parseYaml } from "yaml";
import { caClient, closeCaClient } from "../../ffi/index.ts";
import { declarativeExtraPvDefs, portPvDefs } from "../../src/declarative/pvdefs.ts";
import { parseDeclarative } from "../../src/declarative/spec.ts";
import { defaultPvDefs } from "../../src/plugins/config.ts";
import type { Pv } from "../../src/pv/pv.ts";
import {
  constructWithContext,
  type PvAlarm,
  type PvInput,
  type SdkHost,
  setServices,
} from "../../src/sdk/host.ts";
import { DeclarativeTask } from "../../src/sdk/index.ts";
import { type CaHarness, runPy, startCaServer } from "../helpers/ca-harness.ts";
import { example } from "./examples.ts";

const savedEnv: Record<string, string | undefined> = {};
let h: CaHarness;

beforeAll(async () => {
  h = await startCaServer();
  for (const k of Object.keys(h.env)) savedEnv[k] = process.env[k];
  Object.assign(process.env, h.env);
  setServices({ ca: () => caClient() });
});

afterAll(async () => {
  // The SDK's services are process-wide: leave none behind for the test files run after this one.
  setServices({});
  await closeCaClient();
  await h.stop();
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Creates the plugin's PVs in the served registry and a host writing to them. */
function pluginOn(prefix: string, yaml: string) {
  const cfg = parseYaml(yaml) as Record<string, unknown>;
  const params = (cfg.parameters ?? {}) as Record<string, unknown>;
  const spec = parseDeclarative(cfg, params, "2.7.9");
  const logs: string[] = [];
  const pvs = new Map<string, Pv>();
  for (const d of [
    ...defaultPvDefs("task"),
    ...declarativeExtraPvDefs(spec),
    ...portPvDefs(spec),
  ]) {
    pvs.set(d.name, h.registry.add({ ...d.spec, name: `${prefix}:${d.name}` }));
  }
  const host: SdkHost = {
    setPv(name: string, value: PvInput, alarm?: PvAlarm) {
      const pv = pvs.get(name);
      if (!pv) throw new Error(`unknown PV ${name}`);
      pv.post(
        value,
        alarm ? { severity: alarm.severity as 0, status: (alarm.status ?? 0) as 0 } : {},
      );
    },
    getPv: (name: string) => pvs.get(name)?.value,
    hasPv: (name: string) => pvs.has(name),
    addPv: async () => {},
    log: (_level, _b, args) => logs.push(args.map(String).join(" ")),
  };
  const task = constructWithContext(DeclarativeTask, {
    name: prefix.toLowerCase(),
    kind: "task",
    prefix,
    parameters: params,
    mode: spec.mode === "triggered" ? "triggered" : "continuous",
    interval: spec.interval,
    host,
    declarative: spec,
  });
  const value = (name: string) => {
    const v = pvs.get(name)?.value;
    return v instanceof Int32Array ? [...v] : v;
  };
  return { task, pvs, logs, value, spec };
}

describe("intlk example over CA", () => {
  test("links, trip, actuator put, latch, CLEAR, RESET, disconnection, ENABLE", async () => {
    const chiller = h.registry.add({
      name: "TEST:CHL:RUN",
      kind: "long",
      writable: true,
      initial: 1,
    });
    const rf = h.registry.add({ name: "TEST:RF:ON", kind: "long", writable: true, initial: 1 });
    const { task, value, pvs, logs } = pluginOn("T:INTLK", example("intlk"));
    await task.initialize();
    expect(value("MESSAGE")).toBe("All 2 inputs connected");
    expect(value("CONN_INP")).toEqual([1, 1]);
    expect(value("CONN_INP_NAMES")).toBe("chiller\nrf");
    await task.execute();
    expect(value("INTLK")).toBe(0);

    // 1. The chiller stops: INTLK trips (MAJOR from alarm_on), LAST_EVENT stamped, rf put to 0.
    chiller.post(0);
    await task.execute();
    expect(value("INTLK")).toBe(1);
    expect(pvs.get("INTLK")?.severity).toBe(2);
    expect(String(value("LAST_EVENT"))).toMatch(
      /^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d - chiller off while R$/,
    );
    await until(() => rf.value === 0, "the actuator put TEST:RF:ON = 0");
    await until(() => value("rf") === 0, "the rf monitor");
    // 2. Latched while the condition is false; the chiller coming back changes nothing.
    chiller.post(1);
    await task.execute();
    await task.execute();
    expect(value("INTLK")).toBe(1);
    // 3. CLEAR: next cycle INTLK 0 and CLEAR reads 0.
    pvs.get("CLEAR")?.post(1);
    await task.onPvWrite("CLEAR", 1);
    await task.execute();
    expect(value("INTLK")).toBe(0);
    expect(value("CLEAR")).toBe(0);
    // 5. RESET: counter restarts, MESSAGE says so, RESET reads 0.
    task._cycleCount = 7;
    await task.onPvWrite("RESET", 1);
    await task.execute();
    expect(task._cycleCount).toBe(0);
    expect(value("MESSAGE")).toBe("Task reset");
    expect(value("RESET")).toBe(0);
    // Served over CA: pyepics sees the PVs and the alarm.
    const py = (await runPy(
      h.port,
      `out([epics.caget("T:INTLK:CONN_INP").tolist(), epics.caget("T:INTLK:INTLK", as_string=True), epics.caget("T:INTLK:VERSION")])`,
    )) as unknown[];
    expect(py).toEqual([[1, 1], "OK", "2.7.9"]);
    // 6. The chiller IOC goes away: the next poll fails, CONN_INP [0,1], forced MAJOR on outputs.
    h.registry.remove("TEST:CHL:RUN");
    await task.execute();
    expect(value("CONN_INP")).toEqual([0, 1]);
    expect(pvs.get("INTLK")?.severity).toBe(2);
    expect(pvs.get("INTLK")?.state.status).toBe(14);
    expect(pvs.get("LAST_EVENT")?.severity).toBe(2);
    expect(logs.some((l) => l.includes("TEST:CHL:RUN of chiller lost"))).toBe(true);
    // It comes back: a probe restores it (forced probe through CLEAR, not waiting retry_interval).
    h.registry.add({ name: "TEST:CHL:RUN", kind: "long", writable: true, initial: 1 });
    // libca searches again for the lost channel with a back-off: probe until it answers.
    for (let i = 0; i < 60 && value("CONN_INP")?.toString() !== "1,1"; i++) {
      await task.onPvWrite("CLEAR", 1);
      await task.execute();
    }
    expect(value("CONN_INP")).toEqual([1, 1]);
    expect(pvs.get("INTLK")?.severity).toBe(0);
    // 7. ENABLE=0 closes the rf monitor: a change of TEST:RF:ON is not seen until re-enabled.
    task.onEnable(false);
    expect(value("MESSAGE")).toBe("Task paused");
    rf.post(1);
    await Bun.sleep(300);
    expect(value("rf")).toBe(0);
    task.onEnable(true);
    expect(value("MESSAGE")).toBe("Task running");
    await until(() => value("rf") === 1, "the reopened rf monitor");
    await task.cleanup();
  }, 90_000);
});

describe("vac example over CA: reactive mode", () => {
  test("a triggering change evaluates at once; execute() is only a heartbeat", async () => {
    const ok = h.registry.add({
      name: "TEST:VAC:OK",
      kind: "enum",
      writable: true,
      initial: 1,
      meta: { states: ["NO", "YES"] },
    });
    const p = h.registry.add({ name: "TEST:VAC:P", kind: "double", writable: true, initial: 1e-8 });
    const valve = h.registry.add({
      name: "TEST:VALVE:CMD",
      kind: "long",
      writable: true,
      initial: 1,
    });
    const { task, value } = pluginOn("T:VAC", example("vac"));
    const changes: string[] = [];
    task.onInputChanged = (name, v, old) => {
      changes.push(`${name}:${old}->${v}`);
    };
    await task.initialize();
    await until(() => value("SYS_CONN") === "OK", "all links connected");
    // One wired output: our PV model makes a 1-element array a scalar (docs/compat-2.7.9.md).
    expect(value("CONN_OUT")).toBe(1);
    await task.execute();
    expect(value("P_AVG")).toBe(0);
    p.post(2e-8);
    await until(() => Number(value("P_AVG")) > 0, "the reactive evaluation");
    expect(Number(value("P_AVG"))).toBeCloseTo(1.5e-8, 20);
    expect(value("PERMIT")).toBe(1);
    ok.post(0);
    await until(() => value("PERMIT") === 0, "PERMIT denied");
    await until(() => valve.value === 0, "the forwarded VALVE_CMD put");
    ok.post(1);
    await until(() => changes.includes("vac_ok:0->1"), "onInputChanged");
    expect(value("PERMIT")).toBe(0);
    await task.onPvWrite("CLEAR", 1);
    await task.execute();
    expect(value("PERMIT")).toBe(1);
    expect(changes).toContain("pressure:1e-8->2e-8");
    await task.cleanup();
  }, 60_000);
});
