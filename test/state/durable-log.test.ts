/**
 * The durable-write log: on disk before the promise resolves, group commit, a torn last line
 * ignored at replay, compaction into the autosave files at load, and a clear refusal when the
 * value cannot be stored.
 */
import { afterEach, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { DurableLog } from "../../src/state/durable-log.ts";
import { DURABLE_LOG_FILE, StateStore } from "../../src/state/store.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "iocmng-dlog-"));
  dirs.push(d);
  return d;
}
const silent = pino({ level: "silent" });

test("appends are in the file when they resolve; a torn last line is skipped", async () => {
  const d = await tmp();
  const log = new DurableLog(join(d, "x.log"));
  await Promise.all([1, 2, 3].map((i) => log.append({ plugin: "p", pv: "A", value: i })));
  expect(readFileSync(join(d, "x.log"), "utf8").trim().split("\n")).toHaveLength(3);
  appendFileSync(join(d, "x.log"), '{"p":"p","n":"A","v":');
  expect((await log.replay()).map((r) => r.value)).toEqual([1, 2, 3]);
  await log.close();
});

test("a value that cannot be stored is refused with the reason", async () => {
  const d = await tmp();
  mkdirSync(join(d, "x.log"));
  const log = new DurableLog(join(d, "x.log"));
  await expect(log.append({ plugin: "p", pv: "A", value: 1 })).rejects.toThrow(/value not stored/);
});

test("load compacts the log into autosave (known plugins only) and empties it", async () => {
  const d = await tmp();
  const a = new StateStore(d, silent);
  await a.load();
  await a.putPlugin({
    name: "p",
    kind: "task",
    git_url: "file:///x",
    parameters: {},
    auto_start: true,
    cloneDir: "/x",
    addedAt: new Date().toISOString(),
  });
  await a.saveDurable("p", "SP", 4.5);
  await a.saveDurable("gone", "SP", 1);
  // A crash now: the batched autosave has not run; only the log holds the values.
  const b = new StateStore(d, silent);
  await b.load();
  expect(await b.loadAutosave("p")).toEqual({ SP: 4.5 });
  expect(await b.loadAutosave("gone")).toEqual({});
  expect(readFileSync(join(d, DURABLE_LOG_FILE), "utf8")).toBe("");
});
