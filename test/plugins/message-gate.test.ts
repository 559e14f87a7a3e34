/**
 * A plugin process's messages are applied in order, a large setPv batch in slices of SLICE updates
 * with a macrotask between them (src/plugins/host/message-gate.ts): what the slicing must never
 * change is the order readers see: a write answered after the plugin's own setPv of thousands of
 * PVs made in its onPvWrite, a get after a put.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { MessageGate, SLICE } from "../../src/plugins/host/message-gate.ts";
import type { SetUpdate } from "../../src/plugins/protocol.ts";
import { type CaHarness, runPy, startCaServer } from "../helpers/ca-harness.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue } from "./harness.ts";

setDefaultTimeout(90_000);

type Msg = { kind: "set"; n: number; tag: string } | { kind: "other"; tag: string };

/** A gate whose "set" messages carry n updates named tag:i; records what was applied, in order. */
function recorder() {
  const applied: string[] = [];
  const calls: number[] = [];
  const gate: MessageGate<Msg> = new MessageGate<Msg>(
    (m) => {
      if (m.kind === "other") applied.push(m.tag);
      else
        gate.applySet(
          Array.from({ length: m.n }, (_, i): SetUpdate => [`${m.tag}:${i}`, i] as SetUpdate),
        );
    },
    (u) => {
      calls.push(u.length);
      for (const x of u) applied.push(x[0]);
    },
  );
  return { gate, applied, calls };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

test("a batch of at most SLICE updates is applied at once, in the same call", () => {
  const { gate, applied, calls } = recorder();
  gate.deliver({ kind: "set", n: SLICE, tag: "a" });
  gate.deliver({ kind: "other", tag: "reply" });
  expect(calls).toEqual([SLICE]);
  expect(applied.at(-1)).toBe("reply");
  expect(gate.busy).toBe(false);
});

test("a larger batch: first slice now, the rest one slice per turn; later messages wait behind it", async () => {
  const { gate, applied, calls } = recorder();
  const n = SLICE * 3 + 5;
  gate.deliver({ kind: "set", n, tag: "big" });
  gate.deliver({ kind: "other", tag: "reply" });
  gate.deliver({ kind: "set", n: 2, tag: "small" });
  expect(calls).toEqual([SLICE]);
  expect(gate.busy).toBe(true);
  expect(applied).not.toContain("reply");
  for (let i = 0; i < 10 && gate.busy; i++) await turn();
  expect(gate.busy).toBe(false);
  expect(calls).toEqual([SLICE, SLICE, SLICE, 5, 2]);
  const expected = [
    ...Array.from({ length: n }, (_, i) => `big:${i}`),
    "reply",
    "small:0",
    "small:1",
  ];
  expect(applied).toEqual(expected);
});

test("a queued large batch is sliced in its turn, and what follows it still waits", async () => {
  const { gate, applied } = recorder();
  gate.deliver({ kind: "set", n: SLICE + 1, tag: "one" });
  gate.deliver({ kind: "set", n: SLICE * 2, tag: "two" });
  gate.deliver({ kind: "other", tag: "end" });
  for (let i = 0; i < 10 && gate.busy; i++) await turn();
  expect(gate.busy).toBe(false);
  expect(applied.length).toBe(SLICE + 1 + SLICE * 2 + 1);
  expect(applied.indexOf("two:0")).toBe(SLICE + 1);
  expect(applied.at(-2)).toBe(`two:${SLICE * 2 - 1}`);
  expect(applied.at(-1)).toBe("end");
});

test("a message whose handler throws does not stall the ones queued after it", async () => {
  const applied: string[] = [];
  const errors: unknown[] = [];
  {
    const gate: MessageGate<Msg> = new MessageGate<Msg>(
      (m) => {
        if (m.tag === "bad") throw new Error("bad message");
        if (m.kind === "set")
          gate.applySet(Array.from({ length: m.n }, (_, i) => [`s${i}`, i] as SetUpdate));
        else applied.push(m.tag);
      },
      (u) => {
        for (const x of u) applied.push(x[0]);
      },
      (e) => errors.push(e),
    );
    gate.deliver({ kind: "set", n: SLICE + 1, tag: "set" });
    gate.deliver({ kind: "other", tag: "bad" });
    gate.deliver({ kind: "other", tag: "after" });
    for (let i = 0; i < 10 && gate.busy; i++) await turn();
    expect(gate.busy).toBe(false);
    expect(applied.at(-1)).toBe("after");
    expect(errors.map((e) => (e as Error).message)).toEqual(["bad message"]);
  }
});

// Through a real plugin process and a real CA client: the plugin's onPvWrite sets 5,000 PVs (one
// batch of 5,000, applied in ~40 slices: enough turns that a reply overtaking them is seen, checked
// by breaking the gate) and then returns; the put with completion must come back only
// after all of them are visible.
const COUNT = 5000;
const SRC = `import { TaskBase } from "iocmng";
export default class Fan extends TaskBase {
  async initialize() {
    const adds = [];
    for (let i = 0; i < ${COUNT}; i++) adds.push(this.addPv("F" + i, { kind: "double", initial: -1 }));
    await Promise.all(adds);
  }
  execute() {}
  cleanup() {}
  onPvWrite(name: string, value: unknown) {
    for (let i = 0; i < ${COUNT}; i++) this.setPv("F" + i, Number(value) * 10 + i / 1000);
  }
}
`;
const CONFIG = `parameters:
  mode: triggered
pvs:
  inputs:
    IN:
      type: float
      value: 0
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

test("a put with completion answered after the plugin's 5,000 setPv: a get after it sees them all", async () => {
  expect((await env.controller.add({ name: "fan", kind: "task", git_url: repo.url })).ok).toBe(
    true,
  );
  const out = (await runPy(
    ca.port,
    `
first = epics.PV("TEST:FAN:F0")
last = epics.PV("TEST:FAN:F${COUNT - 1}")
inp = epics.PV("TEST:FAN:IN")
for p in (first, last, inp):
    p.wait_for_connection(timeout=10)
seen = []
for v in range(1, 6):
    inp.put(v, wait=True, timeout=30)
    seen.append([first.get(use_monitor=False), last.get(use_monitor=False)])
out({"seen": seen})
`,
  )) as { seen: number[][] };
  expect(out.seen).toEqual([1, 2, 3, 4, 5].map((v) => [v * 10, v * 10 + (COUNT - 1) / 1000]));
  expect(pvValue(env, `TEST:FAN:F${COUNT - 1}`)).toBe(50 + (COUNT - 1) / 1000);
  // The same without a network round trip between the answer and the read: checked in the tick
  // the write completes, when slices still pending would show (a client's get could come as early).
  const input = env.registry.get("TEST:FAN:IN");
  if (!input) throw new Error("TEST:FAN:IN not served");
  for (const v of [6, 7, 8]) {
    await input.write(v);
    expect([pvValue(env, "TEST:FAN:F0"), pvValue(env, `TEST:FAN:F${COUNT - 1}`)]).toEqual([
      v * 10,
      v * 10 + (COUNT - 1) / 1000,
    ]);
  }
  expect((await env.controller.remove("task", "fan")).ok).toBe(true);
});
