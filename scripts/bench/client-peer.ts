/**
 * Server side of the client throughput benchmark, run as its own process so that server and client
 * do not share a CPU thread: serves `count` double PVs BENCH:0..n-1 on a random loopback port,
 * prints the port, then posts a new value to every PV in rounds, yielding to the event loop between
 * rounds, until killed. Usage: bun scripts/bench/client-peer.ts [count]
 */
import pino from "pino";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/index.ts";

const count = Number(process.argv[2] ?? 1000);
const registry = new PvRegistry();
const pvs = Array.from({ length: count }, (_, i) =>
  registry.add({ name: `BENCH:${i}`, kind: "double", initial: 0 }),
);
const server = new CaServer({
  registry,
  logger: pino({ level: "silent" }),
  config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
});
await server.start();
console.log(server.tcpPort);

let round = 0;
let posting = false;
process.stdin.on("data", () => {
  // Any input starts the flood, so connection and subscription happen on a quiet server.
  if (posting) return;
  posting = true;
  const tick = () => {
    round++;
    for (const pv of pvs) pv.post(round);
    setImmediate(tick);
  };
  tick();
});
