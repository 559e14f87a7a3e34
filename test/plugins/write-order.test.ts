/**
 * One onPvWrite per PV at a time: the CA server hands a PV's write handler several writes at once
 * (docs/ca-server.md, "Ordering and backpressure"), and the plugin runtime chains them per PV, so a
 * plugin's handler never overlaps itself on one PV and sees the writes in the order sent — while
 * writes to another PV are not held behind them.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { type CaHarness, runPy, startCaServer } from "../helpers/ca-harness.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, waitFor } from "./harness.ts";

setDefaultTimeout(90_000);

const SRC = `import { TaskBase } from "iocmng";
let active = 0;
let max = 0;
const order: number[] = [];
let bStarted: () => void = () => {};
const bLatch = new Promise<void>((r) => { bStarted = r; });
export default class Serial extends TaskBase {
  initialize() {}
  execute() {}
  cleanup() {}
  async onPvWrite(name: string, value: unknown) {
    if (name === "B") { bStarted(); return; }
    active++;
    if (active > max) max = active;
    order.push(Number(value));
    // The first write to A waits until a write to B has reached its handler: were writes of
    // different PVs chained too, B would wait behind A and this write would time out.
    if (Number(value) === 0) await bLatch;
    await new Promise((r) => setTimeout(r, 5));
    active--;
    this.setPv("MAXC", max);
    // CA strings hold 40 characters: the full order as a check, the first ten as text.
    this.setPv("ORDER", order.slice(0, 10).join(" "));
    this.setPv("COUNT", order.length);
    this.setPv("INORDER", order.every((v, i) => v === i) ? 1 : 0);
  }
}
`;
const CONFIG = `parameters:
  mode: triggered
pvs:
  inputs:
    A:
      type: int
      value: -1
    B:
      type: int
      value: 0
  outputs:
    MAXC:
      type: int
    ORDER:
      type: string
    COUNT:
      type: int
    INORDER:
      type: int
`;

let ca: CaHarness;
let env: Env;
let repo: TestRepo;

beforeAll(async () => {
  ca = await startCaServer();
  env = await makeEnv({ registry: ca.registry });
  repo = await createRepo({ files: { "index.ts": SRC, "config.yaml": CONFIG } });
});
afterAll(async () => {
  await destroyEnv(env);
  await ca.stop();
  await repo.cleanup();
});

test("a burst of writes to one PV reaches onPvWrite one at a time, in order; another PV is not held", async () => {
  expect((await env.controller.add({ name: "serial", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  const a = env.registry.get("TEST:SERIAL:A");
  const b = env.registry.get("TEST:SERIAL:B");
  if (!a || !b) throw new Error("PVs not served");
  // Ten overlapping writes (none awaited before the next), then one to B while they are pending.
  const writes = Array.from({ length: 10 }, (_, i) => a.write(i));
  const toB = b.write(1);
  await Promise.all([...writes, toB]);
  await waitFor(() => pvValue(env, "TEST:SERIAL:ORDER") === "0 1 2 3 4 5 6 7 8 9", "all writes");
  expect(pvValue(env, "TEST:SERIAL:MAXC")).toBe(1);
  expect(pvValue(env, "TEST:SERIAL:INORDER")).toBe(1);
  expect(pvValue(env, "TEST:SERIAL:A")).toBe(9);
  expect(pvValue(env, "TEST:SERIAL:B")).toBe(1);
});

test("the same through a real CA client: puts without waiting, then one with completion", async () => {
  // pyepics sends the puts back to back on one channel; the server calls the handler for each
  // at once, the plugin runtime runs them one after the other.
  const out = (await runPy(
    ca.port,
    `
pv = epics.PV("TEST:SERIAL:A")
pv.wait_for_connection(timeout=10)
for i in range(10, 29):
    pv.put(i, wait=False)
pv.put(29, wait=True, timeout=30)
out({"a": epics.caget("TEST:SERIAL:A", use_monitor=False)})
`,
  )) as Record<string, unknown>;
  expect(out).toEqual({ a: 29 });
  await waitFor(() => pvValue(env, "TEST:SERIAL:COUNT") === 30, "the 20 CA writes");
  expect(pvValue(env, "TEST:SERIAL:INORDER")).toBe(1);
  expect(pvValue(env, "TEST:SERIAL:MAXC")).toBe(1);
  expect((await env.controller.remove("task", "serial")).ok).toBe(true);
});
