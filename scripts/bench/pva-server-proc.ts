/**
 * Benchmark server process (spawned by scripts/bench/pva-server.ts, not run by hand): serves N
 * double PVs `BENCH:D0..N-1` plus `BENCH:LAT` over pvAccess on random loopback ports (and over CA
 * too with `--ca`, for the both-protocols memory figure) and prints `READY <tcp> <udp>`. The server
 * takes iocmng's own settings from the environment as the product does (IOCMNG_PVA_TYPE_CACHE,
 * IOCMNG_PVA_SERVER_PV, IOCMNG_RT_PRIORITY), not the EPICS address ones, and runs the PVA warm-up
 * the product runs after its start (IOCMNG_PVA_WARMUP=NO skips it) before READY, so clients meet
 * the server as they would a product that has been up a second. Commands on
 * stdin, one per line, answered with one JSON line:
 *   stats             → PvaServer.stats() plus rss and cpu (µs) of this process
 *   update <n> <hz>   → posts new values to the first n PVs at hz (0 stops)
 *   flood <n>         → posts to the first n PVs as fast as the event loop allows (0 stops)
 *   gc                → full GC, then rss
 */
import pino from "pino";
import { CaServer } from "../../src/ca/server/index.ts";
import { raiseServingThread, rtPriorityFromEnv } from "../../src/common/realtime.ts";
import { SearchWorker } from "../../src/common/search-worker.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { pvaServerConfigFromEnv } from "../../src/pva/server/config.ts";
import { PvaServer } from "../../src/pva/server/server.ts";
import { pvaWarmupEnabled } from "../../src/pva/server/warmup.ts";
import { benchPvs, Poster, posterCommands, serveCommands } from "./proc-lib.ts";

const count = Number(process.argv[2] ?? 1000);
const withCa = process.argv.includes("--ca");
const registry = new PvRegistry();
const poster = new Poster(benchPvs(registry, count, "BENCH:D"));
const logger = pino({ level: "warn" });
const { typeCache, serverPv } = pvaServerConfigFromEnv(process.env);
// With --ca both servers' search threads share one Worker, as in `iocmng serve` (src/server.ts).
const searchWorker = new SearchWorker(logger);
const server = new PvaServer({
  source: registry,
  logger,
  searchWorker,
  config: {
    ...(typeCache !== undefined ? { typeCache } : {}),
    ...(serverPv !== undefined ? { serverPv } : {}),
    serverPort: 0,
    broadcastPort: 0,
    intfAddrs: ["127.0.0.1"],
    autoBeaconAddrList: false,
  },
});
await server.start();
// As `iocmng serve` does after its servers start (it defaults to 18; here unset means normal).
raiseServingThread(rtPriorityFromEnv(process.env) ?? 0, logger, "pvAccess server");
if (pvaWarmupEnabled(process.env)) await server.warmUp();
const ca = withCa
  ? new CaServer({
      registry,
      logger,
      config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false },
      searchWorker,
    })
  : null;
await ca?.start();

console.log(`READY ${server.tcpPort} ${server.udpPort}`);
await serveCommands(posterCommands(() => server.stats(), poster));
poster.stop();
await server.stop();
await ca?.stop();
process.exit(0);
