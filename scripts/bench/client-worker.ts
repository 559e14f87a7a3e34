/**
 * Monitor latency into a plugin-like Worker: our CA server on the main thread posts, the ffi
 * client in a Worker receives (libca context of that Worker's thread). Latency is measured from
 * the post to the Worker's onUpdate using absolute clocks (timeOrigin + now), so the postMessage
 * that reports it back is not counted. One update in flight at a time.
 * Usage: bun scripts/bench/client-worker.ts [samples=2000]
 */
import { startCaServer } from "../../test/helpers/ca-harness.ts";

const samples = Number(process.argv[2] ?? 2000);
const h = await startCaServer();
const pv = h.registry.add({ name: "BENCH:WLAT", kind: "double", initial: -1 });
const w = new Worker(new URL("./client-worker-monitor.ts", import.meta.url).href);
let waiting: ((m: { v: number; at: number }) => void) | undefined;
w.onmessage = (ev: MessageEvent) => waiting?.(ev.data as { v: number; at: number });
const first = new Promise<void>((resolve) => {
  waiting = () => resolve();
});
w.postMessage({ env: h.env, pv: "BENCH:WLAT" });
await first;
const lat: number[] = [];
for (let i = 0; i < samples + 100; i++) {
  const got = new Promise<number>((resolve) => {
    waiting = (m) => {
      if (m.v === i) resolve(m.at);
    };
  });
  const t0 = performance.timeOrigin + performance.now();
  pv.post(i);
  const at = await got;
  if (i >= 100) lat.push((at - t0) * 1000);
}
lat.sort((a, b) => a - b);
const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? 0;
console.log(
  `monitor latency into a Worker (server post on main -> Worker onUpdate), ${samples} samples: ` +
    `p50 ${pct(50).toFixed(0)} us, p99 ${pct(99).toFixed(0)} us, max ${(lat.at(-1) ?? 0).toFixed(0)} us`,
);
w.terminate();
await h.stop();
process.exit(0);
