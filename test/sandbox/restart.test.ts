/**
 * The server killed with -9, mid-run and mid-clone: after a restart no process of the old server
 * is left (plugin hosts, what plugins started, git), no orphan clone directory, and state, REST and
 * served PVs agree. A value written with put-completion just before the kill is back.
 */
import { afterAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { COUNTER_TASK } from "../e2e/lib/plugins.ts";
import { py } from "../e2e/lib/pyepics.ts";
import { makeDirs, type ServerDirs, spawnServer, waitFor } from "../e2e/lib/server.ts";
import { makeRepo, type TestRepo } from "../helpers/git-e2e.ts";
import { processesWith } from "../helpers/procs.ts";

const repos: TestRepo[] = [];
let dirs: ServerDirs | undefined;
afterAll(async () => {
  await Promise.all(repos.map((r) => r.remove()));
  await dirs?.remove();
});

/** A task that starts a long `sleep` (tagged) in initialize(): a process of the plugin's own. */
const KID_TASK = (tag: string) => ({
  "kid.ts": `import { TaskBase } from "iocmng";
export default class Kid extends TaskBase {
  initialize() { Bun.spawn(["sleep", "${tag}"], { stdio: ["ignore", "ignore", "ignore"], detached: true }); }
  execute() {}
  cleanup() {}
}
`,
});

test("kill -9 mid-run and mid-clone: no orphans after restart, caput -c value kept", async () => {
  dirs = await makeDirs();
  const first = await spawnServer(dirs);
  const counter = await makeRepo(COUNTER_TASK);
  const tag = `600.${Math.floor(Math.random() * 1e6)}`;
  const kid = await makeRepo(KID_TASK(tag));
  repos.push(counter, kid);
  expect((await first.api("POST", "/tasks", { name: "dur", git_url: counter.url })).status).toBe(
    201,
  );
  expect((await first.api("POST", "/tasks", { name: "kid", git_url: kid.url })).status).toBe(201);
  const kids = await waitFor("the plugin's child process", () => {
    const found = processesWith(tag);
    return found.length > 0 ? found : undefined;
  });
  // A clone that never ends: a TCP server that accepts and never answers the TLS handshake.
  const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const slowUrl = `https://127.0.0.1:${silent.port}/never.git`;
  void first.api("POST", "/tasks", { name: "slow", git_url: slowUrl }).catch(() => {});
  await waitFor("git to be cloning", () => (processesWith(slowUrl).length > 0 ? true : undefined));
  // caput -c, then kill -9 from the same Python process right after the completion arrives.
  const pid = first.proc.pid;
  const r = await py(
    `import os\nput("IOCMNG:DUR:SETPOINT", 7.25, wait=True)\nos.kill(${pid}, 9)\nout(True)`,
    first.caEnv,
  );
  expect(r.result).toBe(true);
  await first.proc.exited;
  // The old server's plugin hosts die with it (parent-death signal).
  await waitFor("the old plugin hosts to be gone", () =>
    processesWith(`"parent":${pid}`).length === 0 ? true : undefined,
  );
  const second = await spawnServer(dirs);
  try {
    // Boot killed what the old plugins and git left, and removed the unfinished clone.
    // (The restored "kid" starts a sleep of its own: the old one must be gone.)
    expect(processesWith(tag).filter((p) => kids.includes(p))).toEqual([]);
    expect(processesWith(slowUrl)).toEqual([]);
    expect(readdirSync(dirs.pluginsDir).sort()).toEqual(["dur", "kid"]);
    const list = await second.api("GET", "/tasks");
    const names = (list.body.tasks ?? list.body.value ?? list.body) as Array<{ name: string }>;
    expect(JSON.stringify(names)).toContain('"dur"');
    expect(JSON.stringify(names)).not.toContain('"slow"');
    const got = await py(
      `out([get("IOCMNG:DUR:SETPOINT"), absent("IOCMNG:SLOW:STATUS")])`,
      second.caEnv,
    );
    expect(got.result).toEqual([7.25, true]);
  } finally {
    await second.kill("SIGKILL");
    silent.stop(true);
  }
}, 120_000);
