/**
 * Acceptance: the three config-only example plugins of iocmng 2.7.9 (test/fixtures/compat-2.7.9), unchanged
 * (config.yaml plus the one-line plugin.py 2.7.9 needed), loaded from a real git repository into a
 * real server (A) whose links point at the PVs of a second real server (B). Operators' view
 * through pyepics. Waits are bounded polls; nothing asserts on time.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startTwoServers, type TwoServers, untilA } from "./lib/two-servers.ts";

let s: TwoServers;

beforeAll(async () => {
  s = await startTwoServers();
}, 240_000);

afterAll(async () => {
  await s?.stop();
});

describe("stats: ring buffer, chained transforms, parameters, rules seeing transforms and setpoints", () => {
  test("steady signal, then a step: AVG/NOISE/SCALED follow, NOISY fires, BAD shows the fixed scope", async () => {
    // GAIN (an unwired input, 2.0) is visible to rules in iocmng: SEES_UNWIRED wins, BAD = 2.
    const first = await untilA<[number, number, number, number]>(
      s,
      "a full steady buffer",
      `out([get("T:STATS:AVG"), get("T:STATS:NOISE"), get("T:STATS:SCALED"), get("T:STATS:BAD")])`,
      (x) => x[0] === 1 && x[3] === 2,
    );
    expect(first).toEqual([1, 0, 10, 2]);
    await s.pyA(`put("T:STATS:GAIN", 0, wait=True); out(1)`);
    await s.pyB(`put("TEST:SIG", 3.0, wait=True); out(1)`);
    // On the way from [1,1,1,1] to [3,3,3,3] the buffer is noisy (std 0.87 or 1 > limit 0.5).
    const noisy = await untilA<[number, number, number]>(
      s,
      "NOISY",
      `out([get("T:STATS:NOISY"), get("T:STATS:NOISE"), get("T:STATS:BAD")])`,
      (x) => x[0] === 1,
    );
    expect(noisy[1]).toBeGreaterThan(0.5);
    // NOISE > 0 and GAIN = 0: SEES_TRANSFORM wrote BAD = 1 (rules see transform outputs).
    expect(noisy[2]).toBe(1);
    const end = await untilA<[number, number, number, number]>(
      s,
      "the buffer full of 3.0",
      `out([get("T:STATS:AVG"), get("T:STATS:NOISE"), get("T:STATS:SCALED"), get("T:STATS:NOISY")])`,
      (x) => x[0] === 3,
    );
    expect(end).toEqual([3, 0, 30, 0]);
  }, 180_000);
});

describe("intlk: poll + monitor links, rule with actuator, message_pv, latch, alarm_on, CLEAR/RESET", () => {
  test("the PVs of 2.7.9, connected links", async () => {
    const r = await s.a.api("GET", "/tasks/intlk");
    expect(r.status).toBe(200);
    const names = (r.body.pvs as { name: string }[]).map((p) => p.name).sort();
    expect(names).toEqual(
      [
        "CLEAR",
        "CONN_INP",
        "CONN_INP_NAMES",
        "CYCLE_COUNT",
        "ENABLE",
        "INTLK",
        "LAST_EVENT",
        "MESSAGE",
        "RESET",
        "STATUS",
        "VERSION",
        "chiller",
        "rf",
      ].sort(),
    );
    const v = await untilA<[string, number[], string, number]>(
      s,
      "intlk connected",
      `out([get("T:INTLK:MESSAGE"), get("T:INTLK:CONN_INP"), get("T:INTLK:CONN_INP_NAMES"), get("T:INTLK:INTLK")])`,
      (x) => x[0] === "All 2 inputs connected",
    );
    expect(v).toEqual(["All 2 inputs connected", [1, 1], "chiller\nrf", 0]);
    // Wired inputs are read-only to clients.
    const ro = await s.pyA(
      `try:\n    put("T:INTLK:chiller", 5, wait=True, timeout=5)\n    out("written")\nexcept Exception as e:\n    out(str(e))`,
    );
    expect(String(ro)).toContain("Write access denied");
  }, 120_000);

  test("trip, actuator put, latch, CLEAR, RESET, disconnection, ENABLE", async () => {
    await s.pyB(`put("TEST:CHL:RUN", 0, wait=True); out(1)`);
    const trip = await untilA<[number, number, string]>(
      s,
      "INTLK trips",
      `p = epics.PV("T:INTLK:INTLK"); v = p.get(timeout=10); out([v, p.severity, get("T:INTLK:LAST_EVENT")])`,
      (x) => x[0] === 1,
    );
    expect(trip[1]).toBe(2);
    expect(trip[2]).toMatch(/^\d\d\/\d\d\/\d\d \d\d:\d\d:\d\d - chiller off while R$/);
    // The actuator wrote TEST:RF:ON = 0 on server B.
    expect(await s.pyB(`out(get("TEST:RF:ON"))`)).toBe(0);
    // Latched: the chiller coming back changes nothing for a few cycles.
    await s.pyB(`put("TEST:CHL:RUN", 1, wait=True); out(1)`);
    const c0 = (await s.pyA(`out(get("T:INTLK:CYCLE_COUNT"))`)) as number;
    await untilA<number>(
      s,
      "three more cycles",
      `out(get("T:INTLK:CYCLE_COUNT"))`,
      (c) => c >= c0 + 3,
    );
    expect(await s.pyA(`out(get("T:INTLK:INTLK"))`)).toBe(1);
    // CLEAR releases the latch at the next cycle and reads 0 again.
    await s.pyA(`put("T:INTLK:CLEAR", 1, wait=True); out(1)`);
    await untilA<[number, number]>(
      s,
      "CLEAR applied",
      `out([get("T:INTLK:INTLK"), get("T:INTLK:CLEAR")])`,
      (x) => x[0] === 0 && x[1] === 0,
    );
    // RESET: counter restarts, MESSAGE "Task reset", RESET back to 0.
    const before = await untilA<number>(
      s,
      "ten cycles",
      `out(get("T:INTLK:CYCLE_COUNT"))`,
      (c) => c >= 10,
    );
    await s.pyA(`put("T:INTLK:RESET", 1, wait=True); out(1)`);
    await untilA<[string, number, number]>(
      s,
      "RESET applied (counter restarted)",
      `out([get("T:INTLK:MESSAGE"), get("T:INTLK:RESET"), get("T:INTLK:CYCLE_COUNT")])`,
      (x) => x[0] === "Task reset" && x[1] === 0 && x[2] < before,
    );
    // The chiller IOC goes away: CONN_INP [0, 1], forced MAJOR on the rule's outputs.
    const del = await s.b.api("DELETE", "/tasks/test");
    expect(del.status).toBe(200);
    const down = await untilA<[number[], number, number]>(
      s,
      "chiller disconnected",
      `a = epics.PV("T:INTLK:INTLK"); a.get(timeout=10); b = epics.PV("T:INTLK:LAST_EVENT"); b.get(timeout=10); out([get("T:INTLK:CONN_INP"), a.severity, b.severity])`,
      (x) => x[0][0] === 0,
    );
    expect(down).toEqual([[0, 1], 2, 2]);
    // ENABLE=0: PAUSED, "Task paused", counter frozen.
    await s.pyA(`put("T:INTLK:ENABLE", 0, wait=True); out(1)`);
    const paused = await untilA<[string, string]>(
      s,
      "paused",
      `out([get("T:INTLK:STATUS", as_string=True), get("T:INTLK:MESSAGE")])`,
      (x) => x[0] === "PAUSED",
    );
    expect(paused[1]).toBe("Task paused");
    await s.pyA(`put("T:INTLK:ENABLE", 1, wait=True); out(1)`);
    await untilA<string>(
      s,
      "running again",
      `out(get("T:INTLK:STATUS", as_string=True))`,
      (x) => x === "RUN",
    );
  }, 240_000);
});

describe("vac: reactive mode, trigger, latch_dir fall, wired output, SYS_CONN", () => {
  test("nothing runs until a trigger; then transforms, rules, forwarding, latch and CLEAR", async () => {
    const r = await s.a.api("GET", "/tasks/vac");
    const names = (r.body.pvs as { name: string }[]).map((p) => p.name);
    expect(names).toEqual(
      expect.arrayContaining(["CONN_OUT", "CONN_OUT_NAMES", "CYCLE_COUNT", "SYS_CONN"]),
    );
    expect(names).not.toContain("RUN");
    const start = await untilA<[string, string, number]>(
      s,
      "vac connected",
      `out([get("T:VAC:SYS_CONN"), get("T:VAC:CONN_OUT_NAMES"), get("T:VAC:P_AVG")])`,
      (x) => x[0] === "OK",
    );
    expect(start).toEqual(["OK", "VALVE_CMD", 0]);
    // The heartbeat counts while nothing is evaluated.
    await untilA<number>(s, "heartbeats", `out(get("T:VAC:CYCLE_COUNT"))`, (c) => c >= 2);
    expect(await s.pyA(`out(get("T:VAC:P_AVG"))`)).toBe(0);
    await s.pyB(`put("TEST:VAC:P", 2e-8, wait=True); out(1)`);
    const avg = await untilA<[number, number]>(
      s,
      "P_AVG",
      `out([get("T:VAC:P_AVG"), get("T:VAC:PERMIT")])`,
      (x) => x[0] > 0,
    );
    expect(avg[0]).toBeCloseTo(1.5e-8, 20);
    expect(avg[1]).toBe(1);
    await s.pyB(`put("TEST:VAC:OK", 0, wait=True); out(1)`);
    await untilA<[number, number]>(
      s,
      "PERMIT denied",
      `out([get("T:VAC:PERMIT"), get("T:VAC:VALVE_CMD")])`,
      (x) => x[0] === 0 && x[1] === 0,
    );
    expect(await s.pyB(`out(get("TEST:VALVE:CMD"))`)).toBe(0);
    await s.pyB(`put("TEST:VAC:OK", 1, wait=True); out(1)`);
    const c0 = (await s.pyA(`out(get("T:VAC:CYCLE_COUNT"))`)) as number;
    await untilA<number>(s, "a heartbeat", `out(get("T:VAC:CYCLE_COUNT"))`, (c) => c > c0);
    expect(await s.pyA(`out(get("T:VAC:PERMIT"))`)).toBe(0);
    await s.pyA(`put("T:VAC:CLEAR", 1, wait=True); out(1)`);
    await untilA<[number, number]>(
      s,
      "CLEAR at the heartbeat",
      `out([get("T:VAC:PERMIT"), get("T:VAC:CLEAR")])`,
      (x) => x[0] === 1 && x[1] === 0,
    );
    // The vacuum IOC goes away: SYS_CONN in alarm; P_AVG (only pressure_buf) gets no forced alarm.
    expect((await s.b.api("DELETE", "/tasks/sim-vac")).status).toBe(200);
    const down = await untilA<[string, number, number, number[]]>(
      s,
      "SYS_CONN disconnected",
      `p = epics.PV("T:VAC:SYS_CONN"); v = p.get(timeout=10); q = epics.PV("T:VAC:P_AVG"); q.get(timeout=10); out([v, p.severity, q.severity, get("T:VAC:CONN_INP")])`,
      (x) => x[0].startsWith("DISCONNECTED"),
    );
    expect(down).toEqual(["DISCONNECTED: vac_ok, pressure", 2, 0, [0, 0]]);
  }, 240_000);
});
