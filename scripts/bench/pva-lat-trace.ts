/**
 * Dev tool for the GET round-trip tail (not part of the headline bench): N sequential GETs on
 * BENCH:LAT against each server given (127.0.0.1:<port>...), alternating server every sample so
 * the machine's noise hits all alike; prints p50/p90/p99/p99.9 per server and, with TRACE_SLOW=1,
 * every sample over a threshold with its index and time, to match against strace or GC logs.
 *   bun scripts/bench/pva-lat-trace.ts <port>[,<port>...] [n=20000] [slowUs=200]
 */
import { Cmd } from "../../src/pva/codec/index.ts";
import { PvaClient } from "../../test/helpers/pva-client.ts";

const ports = (process.argv[2] ?? "").split(",").map(Number);
const n = Number(process.argv[3] ?? 20000);
const slowUs = Number(process.argv[4] ?? 200);
const sides = [];
for (const port of ports) {
  const c = await PvaClient.connect(port);
  const { sid } = await c.channel("BENCH:LAT");
  const ioid = c.ioid();
  await c.init(Cmd.GET, sid, ioid);
  sides.push({ port, c, sid, ioid, times: new Float64Array(n), starts: new Float64Array(n) });
}
const origin = performance.now();
for (let i = -2000; i < n; i++) {
  for (const s of sides) {
    const t0 = performance.now();
    s.c.send(Cmd.GET, (w) => w.u32(s.sid).u32(s.ioid).u8(0));
    await s.c.reply(Cmd.GET, s.ioid);
    if (i < 0) continue;
    s.starts[i] = t0 - origin;
    s.times[i] = (performance.now() - t0) * 1000;
  }
}
for (const s of sides) {
  const sorted = Float64Array.from(s.times).sort();
  const p = (q: number) => (sorted[Math.floor(n * q)] ?? 0).toFixed(1);
  console.log(
    `port ${s.port}: n ${n} p50 ${p(0.5)} p90 ${p(0.9)} p99 ${p(0.99)} p99.9 ${p(0.999)} max ${(sorted[n - 1] ?? 0).toFixed(0)} µs`,
  );
  if (process.env.TRACE_SLOW)
    for (let i = 0; i < n; i++)
      if ((s.times[i] ?? 0) > slowUs)
        console.log(
          `  slow ${s.port} #${i} at ${(s.starts[i] ?? 0).toFixed(3)} ms: ${(s.times[i] ?? 0).toFixed(0)} µs`,
        );
  s.c.close();
}
