/**
 * src/common/realtime.ts (docs/ca-server.md §Scheduling; `iocmng serve` end to end in
 * test/e2e/realtime.test.ts): IOCMNG_RT_PRIORITY's values; the serving thread asks for SCHED_FIFO
 * after its server started and keeps serving, and what it starts afterwards — a Worker thread, a child process such as a
 * plugin host — runs at normal priority (SCHED_RESET_ON_FORK). Run in a child process so the test
 * runner's own thread keeps its scheduling. The scheduler's answer is read from /proc, as `chrt -p`
 * would show it; without the privilege the OS refuses, the refusal is logged and the server still
 * serves.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { rtPriorityFromEnv } from "../../src/common/realtime.ts";

const ROOT = join(import.meta.dir, "..", "..");

const CHILD = `
import { readFileSync } from "node:fs";
import pino from "pino";
import { raiseServingThread } from "./src/common/realtime.ts";
import { PvRegistry } from "./src/pv/registry.ts";
import { PvaServer } from "./src/pva/server/server.ts";
import { PvaClient } from "./test/helpers/pva-client.ts";

/** [policy, rt_priority] of thread tid of pid (proc(5) fields 41 and 40). */
const sched = (pid, tid) => {
  const s = readFileSync("/proc/" + pid + "/task/" + tid + "/stat", "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return [Number(f[38]), Number(f[37])];
};
const logs = [];
const logger = pino({ level: "info" }, { write: (l) => logs.push(JSON.parse(l).msg) });
const registry = new PvRegistry();
registry.add({ name: "RT:X", kind: "double", initial: 2.5 });
const server = new PvaServer({
  source: registry,
  logger,
  config: { serverPort: 0, broadcastPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
});
await server.start();
raiseServingThread(7, logger, "pvAccess server");
const main = sched(process.pid, process.pid);
// A thread created now: its first message reports its own tid's policy.
const w = new Worker(URL.createObjectURL(new Blob([
  'import { readdirSync } from "node:fs"; postMessage(readdirSync("/proc/self/task").length);'
], { type: "application/javascript" })));
await new Promise((r) => { w.onmessage = r; });
const threads = (await import("node:fs")).readdirSync("/proc/" + process.pid + "/task")
  .map((t) => sched(process.pid, t));
w.terminate();
const child = Bun.spawn(["sleep", "5"]);
await Bun.sleep(50);
const childSched = sched(child.pid, child.pid);
child.kill();
const c = await PvaClient.connect(server.tcpPort);
const got = await c.get("RT:X");
c.close();
await server.stop();
console.log(JSON.stringify({ main, threads, childSched, value: got.value.value, logs }));
process.exit(0);
`;

test("raiseServingThread puts the serving thread at SCHED_FIFO (or logs the refusal) and nothing it starts", async () => {
  const p = Bun.spawn(["bun", "-e", CHILD], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  expect(err).not.toContain("error:");
  expect(code).toBe(0);
  const r = JSON.parse(out.trim().split("\n").pop() as string) as {
    main: [number, number];
    threads: Array<[number, number]>;
    childSched: [number, number];
    value: number;
    logs: string[];
  };
  // Served either way.
  expect(r.value).toBe(2.5);
  if (r.main[0] === 1) {
    expect(r.main).toEqual([1, 7]);
    expect(r.logs).toContain("pvAccess server thread at SCHED_FIFO");
    // Only the thread that asked: every other thread (those started before, the Worker after) and
    // the child process are SCHED_OTHER.
    expect(r.threads.filter(([pol]) => pol !== 0)).toEqual([[1, 7]]);
    expect(r.childSched).toEqual([0, 0]);
  } else {
    // Not permitted here (no root, CAP_SYS_NICE or RLIMIT_RTPRIO): logged, normal priority.
    expect(r.main).toEqual([0, 0]);
    expect(r.logs.some((m) => m.startsWith("real-time priority refused"))).toBe(true);
  }
});

test("IOCMNG_RT_PRIORITY: unset says nothing (the caller's default), 0/NO off, 1..99 a SCHED_FIFO priority", () => {
  expect(rtPriorityFromEnv({})).toBeUndefined();
  expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: "18" })).toBe(18);
  expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: "NO" })).toBe(0);
  expect(rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: "0" })).toBe(0);
  for (const bad of ["100", "-1", "high", "1.5"]) {
    expect(() => rtPriorityFromEnv({ IOCMNG_RT_PRIORITY: bad })).toThrow(/IOCMNG_RT_PRIORITY/);
  }
});
