/**
 * Benchmark server process (spawned by scripts/bench/pva-server.ts, not run by hand): serves N
 * double PVs `BENCH:D0..N-1` plus `BENCH:LAT` over pvAccess on random loopback ports (and over CA
 * too with `--ca`, for the both-protocols memory figure) and prints `READY <tcp> <udp>`. Commands on
 * stdin, one per line, answered with one JSON line:
 *   stats             → PvaServer.stats() plus rss and cpu (µs) of this process
 *   update <n> <hz>   → posts new values to the first n PVs at hz (0 stops)
 *   gc                → full GC, then rss
 */
import pino from "pino";
import { CaServer } from "../../src/ca/server/index.ts";
import type { Pv } from "../../src/pv/pv.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { PvaServer } from "../../src/pva/server/server.ts";

const count = Number(process.argv[2] ?? 1000);
const withCa = process.argv.includes("--ca");
const registry = new PvRegistry();
const pvs: Pv[] = [];
for (let i = 0; i < count; i++) pvs.push(registry.add({ name: `BENCH:D${i}`, kind: "double" }));
registry.add({ name: "BENCH:LAT", kind: "double", initial: 1.5 });
const logger = pino({ level: "warn" });
const server = new PvaServer({
  source: registry,
  logger,
  config: { serverPort: 0, broadcastPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
});
await server.start();
const ca = withCa
  ? new CaServer({
      registry,
      logger,
      config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
    })
  : null;
await ca?.start();

let timer: ReturnType<typeof setInterval> | null = null;
let tick = 0;
const reply = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

console.log(`READY ${server.tcpPort} ${server.udpPort}`);
let buf = "";
for await (const chunk of Bun.stdin.stream()) {
  buf += new TextDecoder().decode(chunk);
  let nl = buf.indexOf("\n");
  while (nl >= 0) {
    const [cmd, a, b] = buf.slice(0, nl).trim().split(/\s+/);
    buf = buf.slice(nl + 1);
    nl = buf.indexOf("\n");
    if (cmd === "stats") {
      const cpu = process.cpuUsage();
      reply({ ...server.stats(), rss: process.memoryUsage().rss, cpuUs: cpu.user + cpu.system });
    } else if (cmd === "update") {
      if (timer) clearInterval(timer);
      timer = null;
      const n = Number(a);
      const hz = Number(b);
      if (hz > 0) {
        timer = setInterval(() => {
          tick++;
          for (let i = 0; i < n; i++) (pvs[i] as Pv).post(tick + i);
        }, 1000 / hz);
      }
      reply({ ok: true });
    } else if (cmd === "gc") {
      Bun.gc(true);
      reply({ rss: process.memoryUsage().rss });
    }
  }
}
if (timer) clearInterval(timer);
await server.stop();
await ca?.stop();
process.exit(0);
