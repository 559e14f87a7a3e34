#!/usr/bin/env bun
/**
 * The plugin process path, measured briefly: setPv → CA monitor throughput from one plugin, the
 * put-completion round trip to a plugin's onPvWrite (pyepics `caput(wait=True)`), and what the
 * durable put costs (the same round trip on an input with `autosave: false`, which skips the log).
 * Usage: bun scripts/bench/sandbox.ts [seconds=3] [puts=200]
 */
import { benchServer, hostLine, pluginRepo, summary } from "./plugins-common.ts";

const SECONDS = Number(process.argv[2] ?? 3);
const PUTS = Number(process.argv[3] ?? 200);
const NPV = Number(process.argv[4] ?? 100);
/** "nomon": no CA client monitors the PVs (isolates the plugin → server path). */
const MONITOR = process.argv[5] !== "nomon";

const outputs = Array.from(
  { length: NPV },
  (_, i) => `    V${i}:\n      type: int\n      value: 0\n`,
).join("");
const PUMP = {
  "pump.ts": `import { TaskBase } from "iocmng";
export default class Pump extends TaskBase {
  calls = 0;
  initialize() {}
  async execute() {
    const end = performance.now() + Number(this.parameters.seconds) * 1000;
    let n = 0;
    while (performance.now() < end) {
      for (let k = 0; k < ${NPV}; k++) this.setPv("V" + k, n++);
      // One batch per turn of the event loop (setPv coalesces per PV within a turn).
      await new Promise((r) => setImmediate(r));
    }
    this.calls = n;
    this.setPv("CALLS", n);
  }
  async onPvWrite() {}
  cleanup() {}
}
`,
  "config.yaml": `parameters:\n  mode: triggered\npvs:\n  inputs:\n    SP:\n      type: float\n      value: 0\n    SPN:\n      type: float\n      value: 0\n      autosave: false\n  outputs:\n    CALLS:\n      type: int\n      value: 0\n${outputs}`,
};

const bs = await benchServer("BENCH");
const repo = await pluginRepo(PUMP);
try {
  const add = await bs.post("/tasks", {
    name: "pump",
    git_url: repo.url,
    parameters: { seconds: SECONDS },
  });
  if (add.status !== 201) throw new Error(`add failed: ${JSON.stringify(add.body)}`);
  // Server side: every update that reached the PVs (what CA monitors are fed from).
  let applied = 0;
  for (let k = 0; k < NPV; k++) bs.srv.registry.get(`BENCH:PUMP:V${k}`)?.subscribe(() => applied++);
  // A CA client monitoring all 100 PVs counts the events it receives while the pump runs.
  const py = Bun.spawn(
    [
      "/usr/bin/python3",
      "-c",
      `import epics, time, json
n = [0]
def cb(**kw): n[0] += 1
pvs = [epics.PV("BENCH:PUMP:V%d" % k, callback=cb, auto_monitor=True) for k in range(${MONITOR ? NPV : 0})]
for p in pvs: p.wait_for_connection(10)
time.sleep(0.5)
n[0] = 0
epics.caput("BENCH:PUMP:RUN", 1, wait=True, timeout=60)
print(json.dumps(n[0]))
t = []
for i in range(${PUTS}):
    t0 = time.perf_counter(); epics.caput("BENCH:PUMP:SP", i, wait=True); t.append(time.perf_counter() - t0)
u = []
for i in range(${PUTS}):
    t0 = time.perf_counter(); epics.caput("BENCH:PUMP:SPN", i, wait=True); u.append(time.perf_counter() - t0)
print(json.dumps([t, u]))`,
    ],
    { env: { PATH: process.env.PATH ?? "", ...bs.caEnv }, stdout: "pipe", stderr: "inherit" },
  );
  const out = (await new Response(py.stdout).text()).trim().split("\n");
  const monitorEvents = Number(out[0]);
  const [durable, plain] = JSON.parse(out[1] ?? "[[],[]]") as [number[], number[]];
  const calls = Number(bs.srv.registry.get("BENCH:PUMP:CALLS")?.value ?? 0);
  console.log(hostLine());
  console.log(
    `setPv calls in the plugin: ${(calls / SECONDS / 1e6).toFixed(2)} M/s; updates applied to PVs: ${(applied / SECONDS / 1e6).toFixed(2)} M/s; CA monitor events received by one pyepics client (100 PVs): ${(monitorEvents / SECONDS / 1e3).toFixed(0)} k/s`,
  );
  const ms = (xs: number[]) => xs.map((x) => x * 1000);
  console.log(
    `put-completion round trip, durable input (log + fdatasync): ${summary(ms(durable))}`,
  );
  console.log(`put-completion round trip, input with autosave: false:     ${summary(ms(plain))}`);
} finally {
  await bs.close();
  await repo.remove();
}
