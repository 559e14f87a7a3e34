/**
 * addPv calls travel in batches, one in flight at a time (src/plugins/worker-pvs.ts →
 * src/plugins/host/add-batch.ts): each call still gets its own outcome, in order, across batch
 * boundaries; a definition that cannot be sent fails alone, at once; a plugin writing malformed
 * batches straight into its pipe gets them refused and creates nothing it should not. Real
 * plugins from real git repositories, in their own processes.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { MAX_ADD_BATCH } from "../../src/plugins/protocol.ts";
import { createRepo } from "../helpers/git-repo.ts";
import { type Env, fileEnv, pvValue, waitFor } from "./harness.ts";

setDefaultTimeout(60_000);

let env: Env;
const repos = fileEnv((e) => {
  env = e;
});

const MANY = MAX_ADD_BATCH * 2 + 7;
const OUT = (names: string[]) =>
  `parameters:\n  mode: triggered\npvs:\n  outputs:\n${names.map((n) => `    ${n}:\n      type: string\n      value: ''\n`).join("")}`;

test("each addPv of one turn gets its own outcome, in order, across several batches", async () => {
  const plugin = `import { TaskBase } from "iocmng";
export default class Adds extends TaskBase {
  async initialize() {
    const outcome = (p) => p.then(() => "ok", (e) => String(e.message).slice(0, 30));
    const first = [
      outcome(this.addPv("A", { kind: "double", initial: 1.5 })),
      outcome(this.addPv("bad name!", { kind: "double" })),
      outcome(this.addPv("A2", { kind: "enum", meta: { states: ["off", "on"] }, writable: true })),
      outcome(this.addPv("A2", { kind: "double" })),
    ];
    // Not sendable (a function): refused at once, alone.
    let sync = "none";
    const fn = this.addPv("F", { kind: "double", meta: { f: () => 1 } });
    await fn.catch((e) => { sync = String(e.message).slice(0, 39); });
    const many = [];
    for (let i = 0; i < ${MANY}; i++) many.push(outcome(this.addPv("M" + i, { kind: "long", initial: i })));
    const got = await Promise.all(first);
    const rest = await Promise.all(many);
    this.setPv("FIRST", got.map((g) => (g === "ok" ? "1" : "0")).join(""));
    this.setPv("WHY", got[1]);
    this.setPv("DUP", got[3]);
    this.setPv("SYNC", sync);
    this.setPv("MANY", String(rest.filter((g) => g === "ok").length));
    // A PV just added is known to the plugin at once: setPv by state name works.
    this.setPv("A2", "on");
  }
  execute() {}
  cleanup() {}
}
`;
  const repo = await createRepo({
    files: { "adds.ts": plugin, "config.yaml": OUT(["FIRST", "WHY", "DUP", "SYNC", "MANY"]) },
  });
  repos.push(repo);
  const r = await env.controller.add({ name: "adds", kind: "task", git_url: repo.url });
  if (!r.ok) throw new Error(r.message);
  expect(pvValue(env, "TEST:ADDS:FIRST")).toBe("1010");
  expect(String(pvValue(env, "TEST:ADDS:WHY"))).toStartWith("invalid PV name");
  expect(String(pvValue(env, "TEST:ADDS:DUP"))).toContain("already exists");
  expect(String(pvValue(env, "TEST:ADDS:SYNC"))).toStartWith('addPv("F"): the definition');
  expect(pvValue(env, "TEST:ADDS:MANY")).toBe(String(MANY));
  expect(pvValue(env, "TEST:ADDS:A")).toBe(1.5);
  await waitFor(() => pvValue(env, "TEST:ADDS:A2") === 1, "A2 set by state name");
  expect(pvValue(env, `TEST:ADDS:M${MANY - 1}`)).toBe(MANY - 1);
  expect(env.registry.get("TEST:ADDS:F")).toBeUndefined();
});

test("malformed addPv batches written straight into the pipe are refused; nothing stray is created", async () => {
  const plugin = `import { TaskBase } from "iocmng";
export default class Raw extends TaskBase {
  initialize() {}
  async execute() {
    const got = {};
    process.on("message", (m) => { if (m && m.t === "reply" && m.id >= 90000) got[m.id] = m; });
    const send = process.send.bind(process);
    send({ t: "addPv", id: 90001, items: "x" });
    send({ t: "addPv", id: 90002, items: Array.from({ length: ${MAX_ADD_BATCH + 1} }, (_, i) => ["Z" + i, { kind: "double" }]) });
    send({ t: "addPv", id: 90003, items: [1, ["OK1", { kind: "double" }], [{}, 5], ["OK2", "x"]] });
    for (let i = 0; i < 200 && Object.keys(got).length < 3; i++) await new Promise((r) => setTimeout(r, 25));
    this.setPv("R1", String(got[90001]?.ok) + " " + got[90001]?.message);
    this.setPv("R2", String(got[90002]?.ok) + " " + got[90002]?.message);
    this.setPv("R3", (got[90003]?.data ?? []).map((d) => (d[0] ? "1" : "0")).join(""));
  }
  cleanup() {}
}
`;
  const repo = await createRepo({
    files: { "raw.ts": plugin, "config.yaml": OUT(["R1", "R2", "R3"]) },
  });
  repos.push(repo);
  const r = await env.controller.add({ name: "raw", kind: "task", git_url: repo.url });
  if (!r.ok) throw new Error(r.message);
  const before = env.registry.size;
  await env.registry.get("TEST:RAW:RUN")?.write(1);
  await waitFor(() => pvValue(env, "TEST:RAW:R3") !== "", "the replies");
  expect(pvValue(env, "TEST:RAW:R1")).toBe("false malformed addPv batch");
  expect(pvValue(env, "TEST:RAW:R2")).toBe("false malformed addPv batch");
  // Each call of a well-formed batch on its own: only the valid one is created.
  expect(pvValue(env, "TEST:RAW:R3")).toBe("0100");
  expect(env.registry.get("TEST:RAW:OK1")).toBeDefined();
  expect(env.registry.get("TEST:RAW:OK2")).toBeUndefined();
  expect(env.registry.get("TEST:RAW:Z0")).toBeUndefined();
  expect(env.registry.size).toBe(before + 1);
  expect(env.controller.get("task", "raw")?.status).not.toBe("ERROR");
});
