#!/usr/bin/env bun
/**
 * PVWS fan-out: C WebSocket clients each subscribed to N PVs that change at HZ (default 100 × 100
 * × 10 Hz = 100,000 updates/s), against a server process of its own (pvws-server-proc.ts).
 * Reports the server's CPU seconds per million updates sent (compare with CA's fan-out figure in
 * docs/benchmarks.md), updates received and squashed. Short by default: the machine is shared.
 *
 *   bun scripts/bench/pvws-fanout.ts [clients=100] [pvs=100] [hz=10] [seconds=10]
 */
import { join } from "node:path";

const [clients = 100, pvCount = 100, hz = 10, seconds = 10] = process.argv.slice(2).map(Number);
const proc = Bun.spawn(
  [process.execPath, join(import.meta.dir, "pvws-server-proc.ts"), String(pvCount), String(hz)],
  {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  },
);
const lines = (async function* () {
  let buf = "";
  for await (const chunk of proc.stdout) {
    buf += new TextDecoder().decode(chunk);
    let i = buf.indexOf("\n");
    while (i >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
})();
const next = async () => (await lines.next()).value ?? "";
const port = Number((await next()).split(" ")[1]);
const stats = async () => {
  proc.stdin.write("stats\n");
  return JSON.parse(await next()) as {
    updatesSent: number;
    updatesSquashed: number;
    cpuUs: number;
    rss: number;
  };
};

let received = 0;
const names = Array.from({ length: pvCount }, (_, i) => `BENCH:W${i}`);
const sockets: WebSocket[] = [];
await Promise.all(
  Array.from({ length: clients }, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/pvws/pv`);
    await new Promise((ok) => ws.addEventListener("open", ok, { once: true }));
    ws.addEventListener("message", () => {
      received++;
    });
    ws.send(JSON.stringify({ type: "subscribe", pvs: names }));
    sockets.push(ws);
  }),
);
await Bun.sleep(2000); // first updates and JIT warm-up
const s0 = await stats();
const r0 = received;
const t0 = performance.now();
await Bun.sleep(seconds * 1000);
const s1 = await stats();
const wall = (performance.now() - t0) / 1000;
const sent = s1.updatesSent - s0.updatesSent;
const cpu = (s1.cpuUs - s0.cpuUs) / 1e6;
const out = {
  clients,
  pvs: pvCount,
  hz,
  seconds: Number(wall.toFixed(2)),
  offeredPerSec: clients * pvCount * hz,
  sentPerSec: Math.round(sent / wall),
  receivedPerSec: Math.round((received - r0) / wall),
  squashed: s1.updatesSquashed - s0.updatesSquashed,
  serverCpuS: Number(cpu.toFixed(2)),
  cpuSecondsPerMillion: Number(((cpu / sent) * 1e6).toFixed(2)),
  serverRssMiB: Math.round(s1.rss / 1048576),
  loadavg: (await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" "),
};
console.log(JSON.stringify(out));
for (const ws of sockets) ws.close();
proc.stdin.write("quit\n");
await proc.exited;
