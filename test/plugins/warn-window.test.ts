/**
 * Malformed `setPv` batches a plugin sends are ignored with at most one log line per plugin per
 * window, carrying a count: a plugin sending thousands cannot flood the server's log.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { PluginProcess } from "../../src/plugins/host/process-host.ts";
import { WarnWindow } from "../../src/plugins/host/warn-window.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { destroyEnv, type Env, makeEnv, pvValue, waitFor } from "./harness.ts";

test("one line at once, then one line per window with the count and the last reason", async () => {
  let now = 0;
  const lines: Array<[number, string]> = [];
  const w = new WarnWindow(
    1000,
    (n, why) => lines.push([n, why]),
    () => now,
  );
  w.note("a");
  expect(lines).toEqual([[1, "a"]]);
  for (let i = 0; i < 500; i++) w.note(i === 499 ? "last" : "b");
  expect(lines).toEqual([[1, "a"]]);
  // The window's end reports the 500 in one line (the timer fires in real time: flush stands in).
  now = 1000;
  w.flush();
  expect(lines).toEqual([
    [1, "a"],
    [500, "last"],
  ]);
  // Within a window of that line: counted again, not logged.
  now = 1500;
  w.note("c");
  expect(lines.length).toBe(2);
  w.flush();
  expect(lines[2]).toEqual([1, "c"]);
  // A quiet window later: logged at once.
  now = 5000;
  w.note("d");
  expect(lines[3]).toEqual([1, "d"]);
});

let env: Env;
let repo: TestRepo;
const savedWindow = PluginProcess.warnWindowMs;

beforeAll(async () => {
  PluginProcess.warnWindowMs = 300;
  env = await makeEnv();
  // A plugin that bypasses the SDK and writes 1000 malformed batches straight into its IPC pipe.
  repo = await createRepo({
    files: {
      "flood.ts": `import { TaskBase } from "iocmng";
export default class Flood extends TaskBase {
  initialize() {}
  execute() {
    const send = (process as unknown as { send(m: unknown): void }).send.bind(process);
    for (let i = 0; i < 1000; i++) send({ t: "setb", defs: i, ids: "x" });
    this.setPv("SENT", 1000);
  }
  cleanup() {}
}
`,
      "config.yaml":
        "parameters:\n  mode: triggered\npvs:\n  outputs:\n    SENT:\n      type: int\n      value: 0\n",
    },
  });
});

afterAll(async () => {
  PluginProcess.warnWindowMs = savedWindow;
  await destroyEnv(env);
  await repo.cleanup();
});

test("a plugin flooding malformed batches gets a few counted warnings, and runs on", async () => {
  const r = await env.controller.add({ name: "flood", kind: "task", git_url: repo.url });
  expect(r.ok).toBe(true);
  await env.registry.get("TEST:FLOOD:RUN")?.write(1);
  await waitFor(() => pvValue(env, "TEST:FLOOD:SENT") === 1000, "the flood");
  const warned = () =>
    env.logs
      .map((l) => JSON.parse(l) as { plugin?: string; msg: string; count?: number; time?: number })
      .filter((l) => l.plugin === "flood" && l.msg.includes("setPv batch"));
  // Every batch accounted for, in far fewer lines than batches.
  await waitFor(
    () => warned().reduce((n, l) => n + (l.count ?? 0), 0) === 1000,
    "all 1000 batches counted",
  );
  const lines = warned();
  // One line per window at most: lines ≥ 300 ms apart (pino's time, in ms).
  for (let i = 1; i < lines.length; i++) {
    const gap = (lines[i]?.time ?? 0) - (lines[i - 1]?.time ?? 0);
    expect(gap).toBeGreaterThanOrEqual(299);
  }
  expect(lines.length).toBeLessThan(20);
  expect(lines[0]?.msg).toBe("setPv batch ignored: malformed setPv batch");
  expect(
    lines.some((l) => /^\d+ setPv batches ignored \(last: malformed setPv batch\)$/.test(l.msg)),
  ).toBe(true);
  // The plugin is still fine (the batches were ignored, not fatal).
  expect(env.controller.get("task", "flood")?.running).toBe(true);
});
