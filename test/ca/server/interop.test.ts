/**
 * Interop through the reference client library: pyepics (libca) against our server on loopback.
 * Every test drives a real python3 process; synchronisation goes through PVs (a "GO" PV whose write
 * handler runs the server-side step), never through sleeps or timing assertions.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Pv } from "../../../src/pv/pv.ts";
import { type CaHarness, runPy, startCaServer } from "../../helpers/ca-harness.ts";

let h: CaHarness;

beforeAll(async () => {
  h = await startCaServer();
});
afterAll(async () => {
  await h.stop();
});

describe("get value, time and ctrl forms", () => {
  test("double with units, precision, limits and alarm", async () => {
    const pv = h.registry.add({
      name: "I:DBL",
      kind: "double",
      writable: true,
      initial: 95.5,
      meta: {
        units: "mm",
        precision: 3,
        displayLow: -100,
        displayHigh: 100,
        controlLow: -50,
        controlHigh: 200,
        alarm: { hihi: 99, high: 90, low: -90, lolo: -99 },
      },
    });
    const r = (await runPy(
      h.port,
      `
p = epics.PV("I:DBL", form="ctrl"); assert p.wait_for_connection(10)
v = p.get(timeout=10)
c = p.get_ctrlvars(timeout=10)
t = epics.PV("I:DBL", form="time"); t.wait_for_connection(10); t.get(timeout=10)
s = epics.caget("I:DBL", as_string=True, timeout=10)
out({"v": v, "c": {k: c[k] for k in ("units","precision","upper_disp_limit","lower_disp_limit",
  "upper_ctrl_limit","lower_ctrl_limit","upper_alarm_limit","upper_warning_limit",
  "lower_warning_limit","lower_alarm_limit","severity","status")},
  "ts": t.timestamp, "type": p.type, "count": p.count, "write": p.write_access, "s": s})
`,
    )) as Record<string, unknown> & { c: Record<string, unknown> };
    expect(r.v).toBe(95.5);
    expect(r.s).toBe("95.500");
    expect(r.c).toEqual({
      units: "mm",
      precision: 3,
      upper_disp_limit: 100,
      lower_disp_limit: -100,
      upper_ctrl_limit: 200,
      lower_ctrl_limit: -50,
      upper_alarm_limit: 99,
      upper_warning_limit: 90,
      lower_warning_limit: -90,
      lower_alarm_limit: -99,
      severity: 1,
      status: 4,
    });
    expect(r.type).toBe("ctrl_double");
    expect(r.count).toBe(1);
    expect(r.write).toBe(true);
    // The TIME form carries the PV's POSIX timestamp (pyepics converts back from the EPICS epoch).
    expect(Math.abs((r.ts as number) - (pv.timestamp.sec + pv.timestamp.nsec / 1e9))).toBeLessThan(
      0.001,
    );
  }, 60_000);

  test("long, string, enum and arrays", async () => {
    h.registry.add({ name: "I:LONG", kind: "long", initial: -123456, meta: { units: "cts" } });
    h.registry.add({ name: "I:STR", kind: "string", initial: "hello world" });
    h.registry.add({
      name: "I:ENUM",
      kind: "enum",
      initial: 2,
      writable: true,
      meta: { states: ["Off", "On", "Fault"], stateSeverity: [0, 0, 2] },
    });
    h.registry.add({
      name: "I:WF",
      kind: "double",
      count: 10,
      initial: new Float64Array([1.5, 2.5, 3.5]),
    });
    h.registry.add({ name: "I:CHARS", kind: "char", count: 64, initial: "some text" });
    const r = (await runPy(
      h.port,
      `
l = epics.PV("I:LONG"); l.wait_for_connection(10)
e = epics.PV("I:ENUM"); e.wait_for_connection(10)
w = epics.PV("I:WF"); w.wait_for_connection(10)
c = epics.PV("I:CHARS"); c.wait_for_connection(10)
ec = e.get_ctrlvars(timeout=10)
lc = l.get_ctrlvars(timeout=10)
out({
  "long": l.get(timeout=10), "long_type": l.type, "long_units": lc["units"], "long_write": l.write_access,
  "str": epics.caget("I:STR", timeout=10),
  "enum": e.get(timeout=10), "enum_str": e.get(as_string=True, timeout=10),
  "enum_strs": list(ec["enum_strs"]), "enum_sev": ec["severity"],
  "wf": list(w.get(timeout=10)), "wf_count": w.count, "wf_nelm": w.nelm,
  "chars": c.get(as_string=True, timeout=10), "char_type": c.type,
})
`,
    )) as Record<string, unknown>;
    expect(r.long).toBe(-123456);
    expect(r.long_type).toBe("time_long");
    expect(r.long_units).toBe("cts");
    expect(r.long_write).toBe(false);
    expect(r.str).toBe("hello world");
    expect(r.enum).toBe(2);
    expect(r.enum_str).toBe("Fault");
    expect(r.enum_strs).toEqual(["Off", "On", "Fault"]);
    expect(r.enum_sev).toBe(2);
    // count 0 requests (CA 4.13) return only the 3 valid elements of the 10-element waveform.
    expect(r.wf).toEqual([1.5, 2.5, 3.5]);
    expect(r.wf_nelm).toBe(10);
    expect(r.chars).toBe("some text");
    expect(r.char_type).toBe("time_char");
  }, 60_000);
});

describe("puts", () => {
  test("put without wait, and put with wait that returns only after an async handler", async () => {
    let done: Pv | undefined;
    const order: string[] = [];
    h.registry.add({ name: "P:NOWAIT", kind: "long", writable: true });
    done = h.registry.add({ name: "P:DONE", kind: "double" });
    h.registry.add({ name: "P:SLOW", kind: "double", writable: true }, async (v) => {
      order.push(`start ${v}`);
      await Bun.sleep(300);
      done?.post(Number(v));
      order.push(`end ${v}`);
    });
    const r = (await runPy(
      h.port,
      `
epics.caput("P:NOWAIT", 42)
n = epics.PV("P:NOWAIT"); n.wait_for_connection(10)
t0 = time.time()
while n.get(use_monitor=False, timeout=10) != 42 and time.time() - t0 < 10: time.sleep(0.02)
s = epics.PV("P:SLOW"); s.wait_for_connection(10)
s.put(12.5, wait=True, timeout=30)
# Right after the completion callback, the handler must already have posted P:DONE.
out({"nowait": n.get(use_monitor=False, timeout=10),
     "done": epics.caget("P:DONE", use_monitor=False, timeout=10),
     "slow": s.get(use_monitor=False, timeout=10)})
`,
    )) as Record<string, number>;
    expect(r.nowait).toBe(42);
    expect(r.done).toBe(12.5);
    expect(r.slow).toBe(12.5);
    expect(order).toEqual(["start 12.5", "end 12.5"]);
  }, 60_000);

  test("completion status through libca: ECA_PUTFAIL from a rejecting handler, read-only refused", async () => {
    h.registry.add({ name: "P:REJ", kind: "double", writable: true, initial: 1 }, async () => {
      await Bun.sleep(10);
      throw new Error("interlock active");
    });
    h.registry.add({ name: "P:RO", kind: "double", initial: 3 });
    const r = (await runPy(
      h.port,
      `
import ctypes
from epics import ca, dbr
res = {}
def cb(args):
    res['status'] = args.status
CB = dbr.make_callback(cb, dbr.event_handler_args)
chid = ca.create_channel("P:REJ"); assert ca.connect_channel(chid, timeout=10)
val = (ctypes.c_double * 1)(5.0)
ret = ca.libca.ca_array_put_callback(dbr.DOUBLE, 1, chid, val, CB, ctypes.py_object(None))
ca.flush_io()
t0 = time.time()
while 'status' not in res and time.time() - t0 < 20: ca.poll(0.01)
ro = ca.create_channel("P:RO"); assert ca.connect_channel(ro, timeout=10)
ro_write = ca.write_access(ro)
ro_ret = ca.libca.ca_array_put(dbr.DOUBLE, 1, ro, (ctypes.c_double * 1)(9.0))
out({"status": res.get('status'), "ret": ret, "after": ca.get(chid),
     "ro_write": ro_write, "ro_ret": ro_ret, "ro_after": ca.get(ro)})
`,
    )) as Record<string, unknown>;
    expect(r.ret).toBe(1);
    expect(r.status).toBe(160); // ECA_PUTFAIL
    expect(r.after).toBe(1);
    expect(r.ro_write).toBe(0);
    expect(r.ro_ret).toBe(376); // ECA_NOWTACCESS, refused by libca from our ACCESS_RIGHTS
    expect(r.ro_after).toBe(3);
  }, 60_000);

  test("put a state name and a numeric string; bad enum index refused", async () => {
    const e = h.registry.add({
      name: "P:ENUM",
      kind: "enum",
      writable: true,
      meta: { states: ["Zero", "One", "Two"] },
    });
    const d = h.registry.add({ name: "P:NUM", kind: "double", writable: true });
    await runPy(
      h.port,
      `
epics.caput("P:ENUM", "Two", wait=True, timeout=10)
epics.caput("P:NUM", "2.75", wait=True, timeout=10)
epics.caput("P:ENUM", 7, wait=True, timeout=10)
out(1)
`,
    );
    expect(e.value).toBe(2);
    expect(d.value).toBe(2.75);
  }, 60_000);
});

describe("monitors", () => {
  test("deadband (MDEL) and alarm-only masks", async () => {
    const pv = h.registry.add({
      name: "M:VAL",
      kind: "double",
      initial: 0,
      meta: { mdel: 1, alarm: { high: 10, hsv: 1 } },
    });
    const steps = [0.5, 2, 2.4, 3.5, 11, 11.5, 4, 100];
    h.registry.add({ name: "M:GO", kind: "long", writable: true }, () => {
      for (const v of steps) pv.post(v);
    });
    const r = (await runPy(
      h.port,
      `
from epics import dbr
vals, alarms = [], []
a = epics.PV("M:VAL", auto_monitor=True, callback=lambda value=None, **k: vals.append(value))
a.wait_for_connection(10)
# The second PV object on the same name only once the channel is up: created back to back,
# pyepics sometimes misses the second one's connection and subscribes it 10 s later.
b = epics.PV("M:VAL", auto_monitor=dbr.DBE_ALARM, form="time",
             callback=lambda value=None, severity=None, **k: alarms.append([value, severity]))
b.wait_for_connection(10)
t0 = time.time()
while (len(vals) < 1 or len(alarms) < 1) and time.time() - t0 < 10: time.sleep(0.01)
epics.caput("M:GO", 1, wait=True, timeout=10)
t0 = time.time()
while (not vals or vals[-1] != 100) and time.time() - t0 < 20: time.sleep(0.01)
while len(alarms) < 3 and time.time() - t0 < 20: time.sleep(0.01)
out({"vals": vals, "alarms": alarms})
`,
    )) as { vals: number[]; alarms: number[][] };
    // First update immediately (0), then only changes > 1 from the last sent value.
    expect(r.vals).toEqual([0, 2, 3.5, 11, 4, 100]);
    // DBE_ALARM only: the initial update, entering HIGH at 11, leaving at 4, entering at 100.
    expect(r.alarms).toEqual([
      [0, 0],
      [11, 1],
      [4, 0],
      [100, 1],
    ]);
  }, 60_000);

  test("metadata change reaches a DBE_PROPERTY subscriber", async () => {
    const pv = h.registry.add({ name: "M:PROP", kind: "double", meta: { units: "V" } });
    h.registry.add({ name: "M:PGO", kind: "long", writable: true }, () => {
      pv.setMeta({ units: "kV" });
    });
    const r = (await runPy(
      h.port,
      `
from epics import ca, dbr
units = []
def cb(pvname=None, **kw): units.append(kw.get("units"))
p = epics.PV("M:PROP", form="ctrl", auto_monitor=dbr.DBE_PROPERTY, callback=cb)
p.wait_for_connection(10)
t0 = time.time()
while not units and time.time() - t0 < 10: time.sleep(0.01)
epics.caput("M:PGO", 1, wait=True, timeout=10)
while len(units) < 2 and time.time() - t0 < 20: time.sleep(0.01)
out(units)
`,
    )) as string[];
    expect(r).toEqual(["V", "kV"]);
  }, 60_000);
});

test("disconnect on PV removal, reconnect on re-add", async () => {
  h.registry.add({ name: "D:PV", kind: "double", initial: 1 });
  h.registry.add({ name: "D:CTL", kind: "long", writable: true }, (v) => {
    if (v === 1) h.registry.remove("D:PV");
    if (v === 2) h.registry.add({ name: "D:PV", kind: "double", initial: 42 });
  });
  const r = (await runPy(
    h.port,
    `
events = []
vals = []
p = epics.PV("D:PV", auto_monitor=True,
             connection_callback=lambda conn=None, **k: events.append(conn),
             callback=lambda value=None, **k: vals.append(value))
assert p.wait_for_connection(10)
t0 = time.time()
while not vals and time.time() - t0 < 10: time.sleep(0.01)
epics.caput("D:CTL", 1, wait=True, timeout=10)
while p.connected and time.time() - t0 < 20: time.sleep(0.01)
was_disconnected = not p.connected
epics.caput("D:CTL", 2, wait=True, timeout=10)
while (not p.connected or not vals or vals[-1] != 42) and time.time() - t0 < 40: time.sleep(0.01)
out({"events": events, "vals": vals, "was_disconnected": was_disconnected,
     "value": p.get(use_monitor=False, timeout=10)})
`,
  )) as { events: boolean[]; vals: number[]; was_disconnected: boolean; value: number };
  expect(r.was_disconnected).toBe(true);
  expect(r.events).toEqual([true, false, true]);
  expect(r.vals[0]).toBe(1);
  expect(r.vals.at(-1)).toBe(42);
  expect(r.value).toBe(42);
}, 90_000);

test("a 1,000,000-element double array: get, put and monitor", async () => {
  const n = 1_000_000;
  const init = new Float64Array(n);
  for (let i = 0; i < n; i++) init[i] = i * 0.5;
  const pv = h.registry.add({
    name: "A:BIG",
    kind: "double",
    count: n,
    writable: true,
    initial: init,
  });
  const r = (await runPy(
    h.port,
    `
p = epics.PV("A:BIG"); assert p.wait_for_connection(10)
v = p.get(timeout=60, use_monitor=False)
import numpy
w = numpy.arange(${n}, dtype=float) * -1.0
p.put(w, wait=True, timeout=60)
v2 = p.get(timeout=60, use_monitor=False)
out({"n": len(v), "first": v[0], "last": v[-1], "sum": float(v.sum()), "nelm": p.nelm,
     "n2": len(v2), "last2": v2[-1]})
`,
    { timeoutMs: 120_000 },
  )) as Record<string, number>;
  expect(r.n).toBe(n);
  expect(r.nelm).toBe(n);
  expect(r.first).toBe(0);
  expect(r.last).toBe((n - 1) * 0.5);
  expect(r.sum).toBe((0.5 * n * (n - 1)) / 2);
  expect(r.n2).toBe(n);
  expect(r.last2).toBe(-(n - 1));
  expect((pv.value as Float64Array)[n - 1]).toBe(-(n - 1));
}, 150_000);

test("50 concurrent clients x 100 PVs", async () => {
  for (let i = 0; i < 100; i++) {
    h.registry.add({ name: `C:PV${i}`, kind: "long", initial: i * 3 });
  }
  const r = (await runPy(
    h.port,
    `
from epics import CAProcess
import multiprocessing as mp
def worker(q, k):
    import epics
    names = ["C:PV%d" % i for i in range(100)]
    vals = epics.caget_many(names, timeout=30)
    q.put((k, vals))
q = mp.Queue()
procs = [CAProcess(target=worker, args=(q, k)) for k in range(50)]
for p in procs: p.start()
res = {}
for _ in procs:
    k, vals = q.get(timeout=120)
    res[k] = vals
for p in procs: p.join(30)
out({"n": len(res), "ok": sum(1 for v in res.values() if v == [i * 3 for i in range(100)])})
`,
    { timeoutMs: 180_000 },
  )) as { n: number; ok: number };
  expect(r.n).toBe(50);
  expect(r.ok).toBe(50);
}, 200_000);
