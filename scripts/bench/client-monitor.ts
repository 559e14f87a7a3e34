/**
 * CA client benchmarks (ffi/ over libca against our native server on loopback):
 *  1. monitor latency: server post -> JS onUpdate, one update in flight at a time, server on the
 *     same thread (what a device-layer monitor on the main thread sees); p50/p99/max.
 *     Then the idle CPU cost of 1,000 open monitors receiving nothing.
 *  2. monitor throughput into JS: 1,000 PVs served by a separate process posting in rounds as
 *     fast as it can; updates delivered to onUpdate per second.
 * Usage: bun scripts/bench/client-monitor.ts [latencySamples=2000] [pvs=1000] [seconds=5]
 */
import { startCaServer } from "../../test/helpers/ca-harness.ts";

const samples = Number(process.argv[2] ?? 2000);
const npv = Number(process.argv[3] ?? 1000);
const seconds = Number(process.argv[4] ?? 5);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

// --- 1. latency ---------------------------------------------------------------------------
const h = await startCaServer();
Object.assign(process.env, h.env);
const { caClient } = await import("../../ffi/index.ts");
let ca = caClient();
const pv = h.registry.add({ name: "BENCH:LAT", kind: "double", initial: -1 });
let waiting: ((v: number) => void) | undefined;
const mon = ca.monitor("BENCH:LAT", {
  as: "value",
  onUpdate: (r) => waiting?.(r.value as number),
});
await ca.get("BENCH:LAT");
const lat: number[] = [];
for (let i = 0; i < samples + 100; i++) {
  const got = new Promise<number>((resolve) => {
    waiting = (v) => {
      if (v === i) resolve(v);
    };
  });
  const t0 = performance.now();
  pv.post(i);
  await got;
  if (i >= 100) lat.push((performance.now() - t0) * 1000); // skip warm-up
}
mon.close();

// --- idle cost: 1,000 open monitors, no updates (safety poll + libca housekeeping) ----------
let initial = 0;
const idleMons = Array.from({ length: npv }, (_, i) => {
  h.registry.add({ name: `BENCH:IDLE:${i}`, kind: "double", initial: i });
  return ca.monitor(`BENCH:IDLE:${i}`, { onUpdate: () => initial++ });
});
while (initial < npv) await Bun.sleep(10);
await Bun.sleep(500);
const cpu0 = process.cpuUsage();
const idleT0 = performance.now();
await Bun.sleep(3000);
const cpu = process.cpuUsage(cpu0);
const idlePct = ((cpu.user + cpu.system) / ((performance.now() - idleT0) * 1000)) * 100;
for (const m of idleMons) m.close();
lat.sort((a, b) => a - b);
console.log(
  `monitor latency (server post -> JS callback), ${samples} samples: ` +
    `p50 ${pct(lat, 50).toFixed(0)} us, p99 ${pct(lat, 99).toFixed(0)} us, max ${(lat.at(-1) ?? 0).toFixed(0)} us`,
);
console.log(
  `idle cost with ${npv} open monitors and no updates: ${idlePct.toFixed(2)}% of one core ` +
    "(client and server in this process)",
);
ca.close();
await ca.whenClosed();
await h.stop();

// --- 2. throughput ------------------------------------------------------------------------
const peer = Bun.spawn(
  ["bun", new URL("./client-peer.ts", import.meta.url).pathname, String(npv)],
  {
    stdout: "pipe",
    stdin: "pipe",
    stderr: "inherit",
  },
);
const reader = peer.stdout.getReader();
let text = "";
while (!text.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("peer exited");
  text += new TextDecoder().decode(value);
}
process.env.EPICS_CA_SERVER_PORT = text.trim();
ca = caClient();
let updates = 0;
const mons = Array.from({ length: npv }, (_, i) =>
  ca.monitor(`BENCH:${i}`, { as: "time", onUpdate: () => updates++ }),
);
await Promise.all(Array.from({ length: npv }, (_, i) => ca.get(`BENCH:${i}`, { timeout: 30 })));
while (updates < npv) await Bun.sleep(10); // every initial update in
peer.stdin.write("go\n");
peer.stdin.flush();
await Bun.sleep(500); // let the flood reach steady state
const u0 = updates;
const t0 = performance.now();
await Bun.sleep(seconds * 1000);
const rate = ((updates - u0) * 1000) / (performance.now() - t0);
console.log(
  `monitor throughput into JS: ${npv} PVs, ${rate.toFixed(0)} updates/s over ${seconds} s ` +
    `(shim drops: ${ca.droppedRecords})`,
);
for (const m of mons) m.close();
ca.close();
await ca.whenClosed();
peer.kill();
process.exit(0);
