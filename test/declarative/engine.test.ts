/**
 * The declarative engine's evaluation logic on its own (no Channel Access): link values go in
 * through `linkValue`/`setConnected` exactly as links.ts delivers them, PV writes are recorded.
 * The CA-connected behaviour is covered by task.test.ts and the acceptance tests.
 */
import { describe, expect, test } from "bun:test";
import { parse as parseYaml } from "yaml";
import { Engine, type EngineIo, FORCED_ALARM } from "../../src/declarative/engine.ts";
import { parseDeclarative } from "../../src/declarative/spec.ts";
import { example } from "./examples.ts";

type Rec = Record<string, unknown>;

/** Records every local PV write (value and alarm) and link put. */
function recorder() {
  const pvs = new Map<string, unknown>();
  const alarms = new Map<string, number>();
  const puts: [string, unknown][] = [];
  const logs: string[] = [];
  const io: EngineIo = {
    setLocal: (name, value, alarm) => {
      pvs.set(name, value);
      alarms.set(name, alarm?.severity ?? 0);
    },
    getLocal: (name) => pvs.get(name),
    putLink: (name, value) => puts.push([name, value]),
    log: (_level, msg) => logs.push(msg),
  };
  return { io, pvs, alarms, puts, logs };
}

function engineFor(yaml: string) {
  const cfg = parseYaml(yaml) as Rec;
  const params = (cfg.parameters ?? {}) as Rec;
  const spec = parseDeclarative(cfg, params, "9.9.9");
  const r = recorder();
  for (const p of spec.ports) r.pvs.set(p.name, p.initial);
  return { engine: new Engine(spec, r.io, params), ...r };
}

const STATS = example("stats");

describe("stats example, with the upstream bugs fixed", () => {
  test("ring buffer, chained transforms, parameters, rules seeing transforms and unwired inputs", () => {
    const { engine, pvs } = engineFor(STATS);
    const seen: unknown[][] = [];
    // Initial check reads 1.0, then the cycles poll 1.0, 1.0, 3.0, 3.0, 3.0.
    engine.linkValue("sig", 1.0);
    for (const v of [1.0, 1.0, 3.0, 3.0, 3.0]) {
      engine.linkValue("sig", v);
      engine.evaluate();
      seen.push(["AVG", "NOISE", "SCALED", "NOISY", "BAD"].map((k) => pvs.get(k)));
    }
    const avg = seen.map((s) => s[0]);
    expect(avg).toEqual([1, 1, 1.5, 2, 2.5]);
    expect(Number(seen[2]?.[1]).toFixed(4)).toBe("0.8660");
    expect(seen.map((s) => s[2])).toEqual([10, 10, 15, 20, 25]);
    expect(seen.map((s) => s[3])).toEqual([0, 0, 1, 1, 1]);
    // GAIN (unwired, 2.0) > 0: SEES_UNWIRED fires last, so BAD is 2 (upstream: always eval error).
    expect(seen.map((s) => s[4])).toEqual([2, 2, 2, 2, 2]);
    // An operator sets GAIN to 0: SEES_TRANSFORM (NOISE > 0) now wins.
    pvs.set("GAIN", 0);
    engine.evaluate();
    expect(pvs.get("BAD")).toBe(1);
    expect(engine.errors).toBe(0);
  });
});

const INTLK = example("intlk");

describe("intlk example: latch, CLEAR, actuators, message_pv, forced alarms", () => {
  test("trip latches; CLEAR releases; a condition still true is followed but not re-latched", () => {
    const { engine, pvs, puts, alarms } = engineFor(INTLK);
    engine.linkValue("chiller", 1);
    engine.linkValue("rf", 1);
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(0);
    engine.linkValue("chiller", 0);
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(1);
    expect(puts).toContainEqual(["rf", 0]);
    const ev = pvs.get("LAST_EVENT") as string;
    expect(ev).toMatch(/^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d - chiller off while R$/);
    expect(ev.length).toBe(39);
    // rf follows the actuator; the condition is false but INTLK stays latched.
    engine.linkValue("rf", 0);
    engine.evaluate();
    engine.linkValue("chiller", 1);
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(1);
    expect(engine.latched.has("INTLK")).toBe(true);
    // CLEAR with the condition false: back to the default.
    engine.clear();
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(0);
    // Trip again, CLEAR while the condition holds: written 1 but not latched …
    engine.linkValue("chiller", 0);
    engine.linkValue("rf", 1);
    engine.evaluate();
    engine.clear();
    expect(pvs.get("INTLK")).toBe(0);
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(1);
    expect(engine.latched.has("INTLK")).toBe(false);
    // … it follows the condition; after one false cycle a new trip latches again.
    engine.linkValue("rf", 0);
    engine.evaluate();
    expect(pvs.get("INTLK")).toBe(0);
    engine.linkValue("rf", 1);
    engine.evaluate();
    expect(engine.latched.has("INTLK")).toBe(true);
    expect(alarms.get("INTLK")).toBe(0);
  });

  test("a disconnected input named by a rule forces MAJOR on its outputs; reconnecting clears it", () => {
    const { engine, pvs, alarms } = engineFor(INTLK);
    engine.linkValue("chiller", 1);
    engine.linkValue("rf", 1);
    engine.publishConnections();
    expect(pvs.get("CONN_INP")).toEqual([1, 1]);
    engine.setConnected("chiller", false);
    expect(pvs.get("CONN_INP")).toEqual([0, 1]);
    expect(alarms.get("INTLK")).toBe(FORCED_ALARM.severity);
    expect(alarms.get("LAST_EVENT")).toBe(2);
    // Writes while disconnected keep the alarm.
    engine.evaluate();
    expect(alarms.get("INTLK")).toBe(2);
    expect(engine.connectivityMessage()).toBe("DISCONNECTED (1/2): chiller");
    engine.linkValue("chiller", 1);
    expect(alarms.get("INTLK")).toBe(0);
    expect(engine.connectivityMessage()).toBe("All 2 inputs connected");
  });
});

const VAC = example("vac");

describe("vac example: latch_dir fall, wired output, SYS_CONN, buffers not forcing", () => {
  test("fall latch, forwarded output, SYS_CONN text and alarm, no forced alarm through _buf", () => {
    const { engine, pvs, puts, alarms } = engineFor(VAC);
    expect(engine.spec.mode).toBe("reactive");
    engine.linkValue("vac_ok", 1);
    engine.linkValue("pressure", 1e-8);
    engine.linkValue("VALVE_CMD", 1);
    engine.publishConnections();
    expect(pvs.get("SYS_CONN")).toBe("OK");
    expect(pvs.get("CONN_OUT")).toEqual([1]);
    engine.linkValue("pressure", 2e-8);
    engine.evaluate();
    expect(pvs.get("P_AVG")).toBeCloseTo(1.5e-8, 20);
    expect(pvs.get("PERMIT")).toBe(1);
    engine.linkValue("vac_ok", 0);
    engine.evaluate();
    expect(pvs.get("PERMIT")).toBe(0);
    expect(pvs.get("VALVE_CMD")).toBe(0);
    expect(puts).toContainEqual(["VALVE_CMD", 0]);
    engine.linkValue("vac_ok", 1);
    engine.evaluate();
    expect(pvs.get("PERMIT")).toBe(0);
    engine.clear();
    expect(pvs.get("PERMIT")).toBe(1);
    engine.setConnected("pressure", false);
    expect(pvs.get("SYS_CONN")).toBe("DISCONNECTED: pressure");
    expect(alarms.get("SYS_CONN")).toBe(2);
    expect(pvs.get("CONN_INP")).toEqual([1, 0]);
    expect(alarms.get("P_AVG")).toBe(0);
    expect(alarms.get("PERMIT")).toBe(0);
    engine.linkValue("pressure", 1e-8);
    expect(pvs.get("SYS_CONN")).toBe("OK");
    expect(alarms.get("SYS_CONN")).toBe(0);
  });
});

describe("errors are reported once per distinct message and never stop the others", () => {
  test("a failing transform keeps its output; the next transforms and rules still run", () => {
    const { engine, pvs, logs } = engineFor(`
arguments:
  inputs: {x: {type: float, value: 0, link: "X"}}
  outputs: {A: {type: float}, B: {type: float}, C: {type: int}}
transforms:
  - {output: A, expression: "1 / x"}
  - {output: B, expression: "x + 1"}
rules:
  - {id: R, condition: "B > 0", outputs: {C: 7}}
`);
    engine.linkValue("x", 0);
    for (let i = 0; i < 5; i++) engine.evaluate();
    expect(pvs.get("A")).toBe(0);
    expect(pvs.get("B")).toBe(1);
    expect(pvs.get("C")).toBe(7);
    const errs = logs.filter((l) => l.startsWith("Transform A error"));
    expect(errs).toEqual([
      'Transform A error: ZeroDivisionError: division by zero at column 3 of "1 / x"',
    ]);
    expect(engine.errors).toBe(5);
  });
});
