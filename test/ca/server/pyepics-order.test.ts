/**
 * Issue 11 through pyepics (libca, /usr/bin/python3): put then get at once, a subscription made
 * right after a put, and a count-0 read of an empty array, on PVs whose write handler answers
 * later like a plugin's.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PvValue } from "../../../src/pv/types.ts";
import { type CaHarness, runPy, startCaServer } from "../../helpers/ca-harness.ts";

let h: CaHarness;

beforeAll(async () => {
  h = await startCaServer();
  const later = async (_v: PvValue) => {
    await Bun.sleep(1);
  };
  const r = h.registry;
  r.add({ name: "PY:DBL", kind: "double", writable: true, initial: 109 }, later);
  r.add({ name: "PY:STR", kind: "string", writable: true, initial: "old" }, later);
  r.add({ name: "PY:ENM", kind: "enum", writable: true, meta: { states: ["a", "b", "c"] } }, later);
  r.add({ name: "PY:ARR", kind: "double", count: 8, writable: true }, later);
  r.add({ name: "PY:LNG", kind: "long", writable: true }, later);
  r.add({ name: "PY:EMPTY", kind: "double", count: 10 });
});

afterAll(async () => {
  await h.stop();
});

test("pyepics: put then get at once returns the put value, every kind", async () => {
  const got = await runPy(
    h.port,
    `
res = []
for name, vals in [("PY:DBL", [1234567, 11, 22]), ("PY:STR", ["x", "yy"]), ("PY:ENM", [2, 0]),
                   ("PY:ARR", [[1.5, 2.5, 3.5], [4.5]])]:
    pv = epics.PV(name, auto_monitor=False)
    pv.wait_for_connection(10)
    for v in vals:
        pv.put(v)
        g = pv.get(use_monitor=False, count=(len(v) if isinstance(v, list) else None))
        res.append(g.tolist() if hasattr(g, "tolist") else g)
out(res)
`,
  );
  expect(got).toEqual([1234567, 11, 22, "x", "yy", 2, 0, [1.5, 2.5, 3.5], [4.5]]);
});

test("pyepics: a subscription created right after a put starts at the put value", async () => {
  const got = await runPy(
    h.port,
    `
from epics import ca
chid = ca.create_channel("PY:LNG")
ca.connect_channel(chid, timeout=10)
firsts = []
for v in (4242, -7, 99):
    vals = []
    ca.put(chid, v)
    cb, uarg, evid = ca.create_subscription(chid, callback=lambda value=None, **kw: vals.append(value))
    t = time.time()
    while not vals and time.time() - t < 20:
        ca.poll(0.005)
    firsts.append(vals[0] if vals else None)
    ca.clear_subscription(evid)
out(firsts)
`,
  );
  expect(got).toEqual([4242, -7, 99]);
});

test("pyepics: a count-0 read of an empty array gives an empty array", async () => {
  const got = await runPy(
    h.port,
    `
from epics import ca
chid = ca.create_channel("PY:EMPTY")
ca.connect_channel(chid, timeout=10)
v = ca.get(chid, count=0, ftype=ca.promote_type(chid, use_time=True))
out(len(v) if v is not None and hasattr(v, "__len__") else repr(v))
`,
  );
  expect(got).toBe(0);
});
