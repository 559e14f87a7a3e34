/**
 * The per-plugin PV limit (src/plugins/bridge.ts, MAX_PVS_PER_PLUGIN): a plugin may make 10,000
 * PVs of its own (declared in config.yaml plus addPv), the default PVs the server makes for it not
 * counted; the next addPv is refused with a clear error and changes nothing. A real plugin from a
 * real git repository, in its own process.
 */
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { MAX_PVS_PER_PLUGIN } from "../../src/plugins/bridge.ts";
import { defaultPvNames } from "../../src/plugins/config.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, rejectionOf, waitFor } from "./harness.ts";

setDefaultTimeout(120_000);

let env: Env;
let repo: TestRepo;
beforeAll(async () => {
  env = await makeEnv();
});
afterAll(async () => {
  await destroyEnv(env);
  await repo?.cleanup();
});

// Two declared PVs (MORE, LAST_ERROR) + D0..D9997 made with addPv = 10,000 of its own.
const PLUGIN = `import { TaskBase } from "iocmng";
export default class Many extends TaskBase {
  async initialize() {
    const adds = [];
    for (let i = 0; i < ${MAX_PVS_PER_PLUGIN - 2}; i++) adds.push(this.addPv("D" + i, { kind: "double", initial: i }));
    await Promise.all(adds);
  }
  async onPvWrite(name, value) {
    if (name !== "MORE") return;
    try {
      await this.addPv("X" + value, { kind: "double" });
    } catch (e) {
      this.setPv("LAST_ERROR", String(e.message).slice(0, 39));
      throw e;
    }
  }
  execute() {}
  cleanup() {}
}
`;
const CONFIG =
  "parameters:\n  mode: triggered\npvs:\n  inputs:\n    MORE:\n      type: int\n      value: 0\n  outputs:\n    LAST_ERROR:\n      type: string\n      value: ''\n";

test("a plugin makes 10,000 PVs of its own besides its default PVs; the next is refused and nothing changes", async () => {
  repo = await createRepo({ files: { "many.ts": PLUGIN, "config.yaml": CONFIG } });
  const r = await env.controller.add({ name: "many", kind: "task", git_url: repo.url });
  if (!r.ok) throw new Error(`add failed: ${r.message}`);
  const names = new Set(r.value.pvs.map((p) => p.name));
  const defaults = defaultPvNames("task").filter((n) => names.has(n));
  // Every default PV is there, and on top of them the plugin's own 10,000.
  expect(defaults.length).toBeGreaterThan(0);
  expect(names.size).toBe(MAX_PVS_PER_PLUGIN + defaults.length);
  expect(pvValue(env, "TEST:MANY:D0")).toBe(0);
  expect(pvValue(env, `TEST:MANY:D${MAX_PVS_PER_PLUGIN - 3}`)).toBe(MAX_PVS_PER_PLUGIN - 3);
  const before = env.registry.size;

  // One more: refused inside the plugin with the reason, and the client's write fails with it.
  const why = await rejectionOf(env.registry.get("TEST:MANY:MORE")?.write(1));
  expect(why).toContain(`too many PVs: a plugin may have at most ${MAX_PVS_PER_PLUGIN} of its own`);
  await waitFor(() => pvValue(env, "TEST:MANY:LAST_ERROR") !== "", "the plugin to see the refusal");
  expect(String(pvValue(env, "TEST:MANY:LAST_ERROR"))).toStartWith("too many PVs");
  expect(env.registry.get("TEST:MANY:X1")).toBeUndefined();
  expect(env.registry.size).toBe(before);
  expect(env.controller.get("task", "many")?.pvs.length).toBe(MAX_PVS_PER_PLUGIN + defaults.length);
  // The plugin goes on: its PVs are still served and it can still be written.
  expect(env.controller.get("task", "many")?.status).not.toBe("ERROR");
});
