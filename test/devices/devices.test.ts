/**
 * The device layer: building devices from a beamline values file (names, PV prefixes, types,
 * malformed input) and driving them over Channel Access against our own server, where a motor
 * record is simulated by PVs whose write handlers move the readback.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parse } from "yaml";
import { CaNoAccessError, caClient, type LibcaClient } from "../../ffi/index.ts";
import {
  DeviceConfigError,
  DeviceError,
  DeviceRegistry,
  devicesEnabled,
  MotorDevice,
} from "../../src/devices/index.ts";
import type { Pv } from "../../src/pv/index.ts";
import { type CaHarness, startCaServer } from "../helpers/ca-harness.ts";
import { simulateMotor, simulateTml } from "./sim.ts";

/** Environment this file changed, restored afterwards so later test files start clean. */
const savedEnv: Record<string, string | undefined> = {};
function restoreEnv(): void {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

const FIXTURE = join(import.meta.dir, "fixtures", "beamline-values.yaml");
const values = parse(await Bun.file(FIXTURE).text()) as Record<string, unknown>;
const noClient = () => {
  throw new Error("no CA access expected while building devices");
};

describe("building devices from the values file", () => {
  const reg = DeviceRegistry.fromValues(values, noClient);

  test("lists devices in file order, skipping disabled IOCs and IOCs without devgroup", () => {
    expect(reg.listDevices()).toEqual([
      "M1",
      "M2",
      "SLIT1",
      "BPM1",
      "BPM2",
      "QUAD1",
      "ALAS0",
      "orbit",
      "bpm02_BPM1",
    ]);
    expect(reg.getDevice("VGC1")).toBeUndefined();
    expect(reg.getDevice("archiver-helper")).toBeUndefined();
  });

  test("PV prefixes follow {iocprefix}[:{iocroot}]:{device}", () => {
    expect(reg.getDevice("M1")?.prefix).toBe("TBL:MOT:M1");
    expect(reg.getDevice("SLIT1")?.prefix).toBe("TBL:TML:AXES:SLIT1");
    expect(reg.getDevice("QUAD1")?.pvName("currentReadback")).toBe(
      "TBL:MAG:DANTE:QUAD1:current_rb",
    );
    expect(reg.getDevice("BPM1")?.pvName("x")).toBe("TBL:DIAG:BPM1:SA:SA_X_MONITOR");
    expect(reg.getDevice("ALAS0")?.pvName("temperature")).toBe("TBL:TEMP:ALAS0:TEMP");
    expect(reg.getDevice("orbit")?.prefix).toBe("TBL:ORBIT");
    expect(reg.getDevice("bpm02_BPM1")?.prefix).toBe("TBL:DIAG2:BPM1");
    expect(reg.getDevice("M1")?.pvName("readback")).toBe("TBL:MOT:M1.RBV");
  });

  test("types and groups", () => {
    expect(reg.getDevice("M1")).toBeInstanceOf(MotorDevice);
    expect(reg.getDevice("M1")?.kind).toBe("motor-record");
    expect(reg.getDevice("SLIT1")?.kind).toBe("tml-motor");
    expect(reg.getDevice("BPM1")).not.toBeInstanceOf(MotorDevice);
    expect(reg.getDevicesByType("diag").map((d) => d.name)).toEqual([
      "BPM1",
      "BPM2",
      "orbit",
      "bpm02_BPM1",
    ]);
    expect(reg.getDevicesByType("mot").length).toBe(3);
    expect(reg.getDevicesByType("nothing")).toEqual([]);
    expect(reg.getDevice("QUAD1")?.config.zone).toBe("beam1");
    expect(reg.getDevice("QUAD1")?.config.iocname).toBe("dante01");
    const m1 = reg.getDevice("M1") as MotorDevice;
    expect(m1.limits).toEqual({ low: -50, high: 50 });
    expect(m1.poi).toEqual([
      { name: "in", pos: 12.5 },
      { name: "out", pos: -12.5 },
    ]);
  });

  test("beamline/namespace options prefix every PV", () => {
    const r = DeviceRegistry.fromValues(values, noClient, { beamline: "BL", namespace: "NS" });
    expect(r.getDevice("M1")?.prefix).toBe("BL:NS:TBL:MOT:M1");
  });

  test("an empty or IOC-less file gives an empty registry", () => {
    expect(DeviceRegistry.fromValues({}, noClient).size).toBe(0);
    expect(DeviceRegistry.fromValues({ epicsConfiguration: {} }, noClient).size).toBe(0);
  });

  test("malformed values name the field and build nothing", () => {
    const bad = (v: unknown, msg: RegExp) =>
      expect(() => DeviceRegistry.fromValues(v as Record<string, unknown>, noClient)).toThrow(msg);
    bad([], /top level/);
    bad({ epicsConfiguration: "x" }, /^epicsConfiguration: expected a mapping/);
    bad({ epicsConfiguration: { iocs: { a: 1 } } }, /epicsConfiguration\.iocs: expected a list/);
    bad({ epicsConfiguration: { iocs: [42] } }, /iocs\[0\]: expected a mapping/);
    bad({ epicsConfiguration: { iocs: [{ devgroup: "mot" }] } }, /iocs\[0\]\.name: required/);
    bad(
      { epicsConfiguration: { iocs: [{ name: "a", devgroup: "mot" }] } },
      /iocs\[0\] \(a\)\.iocprefix: required/,
    );
    bad(
      { epicsConfiguration: { iocs: [{ name: "a", devgroup: "mot", iocprefix: ["x"] }] } },
      /iocs\[0\] \(a\)\.iocprefix: expected a string/,
    );
    bad(
      {
        epicsConfiguration: { iocs: [{ name: "a", devgroup: "mot", iocprefix: "A", devices: 3 }] },
      },
      /\.devices: expected a list/,
    );
    bad(
      {
        epicsConfiguration: {
          iocs: [{ name: "a", devgroup: "mot", iocprefix: "A", devices: [{ name: "ok" }, {}] }],
        },
      },
      /iocs\[0\] \(a\)\.devices\[1\]\.name: required/,
    );
    bad(
      {
        epicsConfiguration: {
          iocs: [{ name: "a", devgroup: "mot", iocprefix: "A B", devices: [{ name: "M" }] }],
        },
      },
      /iocprefix: "A B" is not usable in a PV name/,
    );
    bad(
      {
        epicsConfiguration: {
          iocs: [{ name: "a", devgroup: "mot", iocprefix: "A", disable: "yes" }],
        },
      },
      /\.disable: expected true or false/,
    );
    const triple = {
      epicsConfiguration: {
        iocs: [
          {
            name: "a",
            devgroup: "io",
            iocprefix: "A",
            devices: [{ name: "X" }, { name: "X" }, { name: "X" }],
          },
        ],
      },
    };
    bad(triple, /name clash: "a_X"/);
  });

  test("fromFile reports unreadable and invalid files with their path", () => {
    expect(() => DeviceRegistry.fromFile("/nonexistent/values.yaml", noClient)).toThrow(
      /cannot read values file \/nonexistent\/values.yaml/,
    );
    const tmp = join(import.meta.dir, "fixtures", "beamline-values.yaml");
    expect(DeviceRegistry.fromFile(tmp, noClient).size).toBe(9);
  });

  test("invalid YAML is refused with DeviceConfigError", async () => {
    const path = `${process.env.TMPDIR ?? "/tmp"}/iocmng-bad-values-${process.pid}.yaml`;
    await Bun.write(path, "epicsConfiguration: [unclosed\n  iocs: :::\n");
    expect(() => DeviceRegistry.fromFile(path, noClient)).toThrow(DeviceConfigError);
    await Bun.write(path, "- just\n- a list\n");
    expect(() => DeviceRegistry.fromFile(path, noClient)).toThrow(/top level/);
  });

  test("IOCMNG_DISABLE_DEVICES / IOCMNG_DISABLE_OPHYD (disabled by default)", () => {
    expect(devicesEnabled({})).toBe(false);
    expect(devicesEnabled({ IOCMNG_DISABLE_OPHYD: "true" })).toBe(false);
    expect(devicesEnabled({ IOCMNG_DISABLE_OPHYD: "false" })).toBe(true);
    expect(devicesEnabled({ IOCMNG_DISABLE_DEVICES: "0" })).toBe(true);
    expect(devicesEnabled({ IOCMNG_DISABLE_DEVICES: "true", IOCMNG_DISABLE_OPHYD: "false" })).toBe(
      false,
    );
  });

  test("unknown signals and bad positions are refused before any CA traffic", async () => {
    const m1 = reg.getDevice("M1") as MotorDevice;
    expect(() => m1.pvName("nope")).toThrow(/no signal "nope"; known: setpoint/);
    expect(() => m1.pvName("__proto__")).toThrow(DeviceError);
    expect(() => m1.pv("has space")).toThrow(DeviceError);
    expect(() => m1.resolvePosition(51)).toThrow(/outside soft limits/);
    expect(() => m1.resolvePosition("nowhere")).toThrow(
      /unknown position "nowhere"; known: in, out/,
    );
    expect(() => m1.resolvePosition(Number.NaN)).toThrow(/finite/);
    expect(m1.resolvePosition("in")).toBe(12.5);
    await expect(m1.moveTo(1000)).rejects.toThrow(/outside soft limits/);
    await expect(reg.getDevice("BPM1")!.put("x", 1)).rejects.toThrow(/read-only/);
  });
});

describe("devices over Channel Access", () => {
  let h: CaHarness;
  let ca: LibcaClient;
  let reg: DeviceRegistry;

  beforeAll(async () => {
    h = await startCaServer();
    for (const k of Object.keys(h.env)) savedEnv[k] = process.env[k];
    Object.assign(process.env, h.env);
    simulateMotor(h.registry, "TBL:MOT:M1");
    simulateTml(h.registry, "TBL:TML:AXES:SLIT1");
    h.registry.add({ name: "TBL:DIAG:BPM1:SA:SA_X_MONITOR", kind: "double", initial: 0.125 });
    h.registry.add({
      name: "TBL:DIAG:BPM1:ENV:ENV_ADCSP_THRESHOLD_SP",
      kind: "long",
      writable: true,
    });
    h.registry.add({ name: "TBL:DIAG:BPM1:SA:SA_Y_MONITOR", kind: "double", initial: 0 });
    h.registry.add({ name: "TBL:MAG:DANTE:QUAD1:current_rb", kind: "double", initial: 0 });
    ca = caClient();
    reg = DeviceRegistry.fromValues(values, () => ca);
  });

  afterAll(async () => {
    ca?.close();
    await ca?.whenClosed();
    await h?.stop();
    restoreEnv();
  });

  test("motor: moveTo with wait returns at the target; readback follows", async () => {
    const m1 = reg.getDevice("M1") as MotorDevice;
    expect(await m1.readback()).toBe(0);
    await m1.moveTo(5, { wait: true, timeout: 30 });
    expect(await m1.readback()).toBe(5);
    expect(await m1.isMoving()).toBe(false);
    await m1.moveTo("out", { timeout: 30 });
    expect(await m1.readback()).toBe(-12.5);
  });

  test("motor: moveTo without wait returns while moving; stop() ends the move short", async () => {
    const m1 = reg.getDevice("M1") as MotorDevice;
    const start = await m1.readback();
    await m1.moveTo(45, { wait: false });
    const rb = h.registry.get("TBL:MOT:M1.RBV") as Pv;
    // Wait (bounded) until the simulated motor has moved a little, then stop it.
    const end = Date.now() + 10_000;
    while ((rb.value as number) <= start + 1 && Date.now() < end) await Bun.sleep(5);
    expect(await m1.isMoving()).toBe(true);
    await m1.stop();
    while ((h.registry.get("TBL:MOT:M1.DMOV")?.value as number) !== 1 && Date.now() < end) {
      await Bun.sleep(5);
    }
    const stoppedAt = await m1.readback();
    expect(stoppedAt).toBeGreaterThan(start);
    expect(stoppedAt).toBeLessThan(45);
    expect(await m1.isMoving()).toBe(false);
  });

  test("TML motor: moveTo drives the command words and waits for MSTA", async () => {
    const slit = reg.getDevice("SLIT1") as MotorDevice;
    await slit.moveTo(7.5, { timeout: 30 });
    expect(await slit.readback()).toBe(7.5);
    expect(await slit.isMoving()).toBe(false);
    expect(h.registry.get("TBL:TML:AXES:SLIT1:ACT")?.value).toBe(2);
    await slit.moveTo(20, { wait: false });
    const end = Date.now() + 10_000;
    const rb = h.registry.get("TBL:TML:AXES:SLIT1:RBV") as Pv;
    while ((rb.value as number) <= 8.5 && Date.now() < end) await Bun.sleep(5);
    expect(await slit.isMoving()).toBe(true);
    await slit.stop();
    while ((await slit.isMoving()) && Date.now() < end) await Bun.sleep(5);
    const at = await slit.readback();
    expect(at).toBeGreaterThan(7.5);
    expect(at).toBeLessThan(20);
  });

  test("TML motor that never starts: moveTo fails after its timeout, not before", async () => {
    for (const sfx of ["VAL_SP", "ACT", "ACTX_SP"]) {
      h.registry.add({ name: `TBL:DEAD:AX:${sfx}`, kind: "double", writable: true });
    }
    h.registry.add({ name: "TBL:DEAD:AX:MSTA", kind: "long", initial: 0 });
    h.registry.add({ name: "TBL:DEAD:AX:RBV", kind: "double", initial: 0 });
    const r = DeviceRegistry.fromValues(
      {
        epicsConfiguration: {
          iocs: [
            {
              name: "dead",
              devgroup: "mot",
              devtype: "tml",
              iocprefix: "TBL:DEAD",
              devices: [{ name: "AX" }],
            },
          ],
        },
      },
      () => ca,
    );
    const ax = r.getDevice("AX") as MotorDevice;
    const err = await ax.moveTo(3, { timeout: 0.5 }).catch((e) => e);
    expect(err).toBeInstanceOf(DeviceError);
    expect((err as Error).message).toMatch(/not finished after 0.5 s/);
    // A null move (already at the target) finishes without a moving bit.
    await ax.moveTo(0, { timeout: 10 });
  });

  test("generic device: named signals as get/put/monitor", async () => {
    const bpm = reg.getDevice("BPM1")!;
    expect(await bpm.read("x")).toBe(0.125);
    await bpm.put("thresholdSetpoint", 77, { wait: true });
    expect(h.registry.get("TBL:DIAG:BPM1:ENV:ENV_ADCSP_THRESHOLD_SP")?.value).toBe(77);
    const seen: number[] = [];
    const mon = bpm.monitor("y", { onUpdate: (r) => seen.push(r.value as number) });
    const y = h.registry.get("TBL:DIAG:BPM1:SA:SA_Y_MONITOR") as Pv;
    const end = Date.now() + 10_000;
    while (seen.length === 0 && Date.now() < end) await Bun.sleep(5);
    y.post(-0.5);
    while (!seen.includes(-0.5) && Date.now() < end) await Bun.sleep(5);
    mon.close();
    expect(seen).toEqual([0, -0.5]);
    expect((await ca.get(bpm.pv(":SA:SA_X_MONITOR"))).value).toBe(0.125);
  });

  test("a signal the server serves read-only refuses the write", async () => {
    const quad = reg.getDevice("QUAD1")!;
    h.registry.add({ name: "TBL:MAG:DANTE:QUAD1:current", kind: "double", writable: false });
    await expect(quad.put("current", 1, { wait: true })).rejects.toBeInstanceOf(CaNoAccessError);
    expect(await quad.read("currentReadback")).toBe(0);
  });

  test("describe() lists full PV names", () => {
    const d = reg.getDevice("M1")!.describe();
    expect(d).toMatchObject({ name: "M1", devgroup: "mot", prefix: "TBL:MOT:M1" });
    expect((d.signals as Record<string, string>).readback).toBe("TBL:MOT:M1.RBV");
  });
});
