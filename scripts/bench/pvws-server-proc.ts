/**
 * PVWS benchmark server process (spawned by scripts/bench/pvws-fanout.ts, not run by hand):
 * serves N double PVs `BENCH:W0..N-1` over the PV Web Socket on a random loopback port, posts new
 * values to all of them at `hz`, prints `READY <port>`, and answers `stats` on stdin with one JSON
 * line (the endpoint's counters and this process' CPU time in µs).
 */
import { Elysia } from "elysia";
import type { Pv } from "../../src/pv/pv.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PVWS_WEBSOCKET_CONFIG, PvwsHub, pvwsPlugin } from "../../src/pvws/hub.ts";
import { serveCommands, usage } from "./proc-lib.ts";

const count = Number(process.argv[2] ?? 100);
const hz = Number(process.argv[3] ?? 10);
const registry = new PvRegistry();
const pvs: Pv[] = [];
for (let i = 0; i < count; i++) {
  pvs.push(
    registry.add({ name: `BENCH:W${i}`, kind: "double", meta: { units: "mm", precision: 3 } }),
  );
}
const hub = new PvwsHub({ source: registry, apiToken: null });
const app = new Elysia({ websocket: PVWS_WEBSOCKET_CONFIG })
  .use(pvwsPlugin(hub))
  .listen({ hostname: "127.0.0.1", port: 0 });
let tick = 0;
setInterval(() => {
  tick++;
  for (let i = 0; i < pvs.length; i++) (pvs[i] as Pv).post(tick + i / 1000);
}, 1000 / hz);
console.log(`READY ${app.server?.port}`);

await serveCommands({
  stats: () => ({ ...hub.stats, ...usage() }),
  quit: () => process.exit(0),
});
