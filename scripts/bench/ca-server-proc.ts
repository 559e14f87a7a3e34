/**
 * Benchmark server process (spawned by scripts/bench/ca-server.ts, not run by hand): serves N
 * double PVs `${prefix}0..N-1` plus `BENCH:LAT` on a random loopback port and prints
 * `READY <port>` when listening. Commands on stdin, one per line, answered with one JSON line:
 *   stats                → CaServer.stats() plus rss and cpu (µs) of this process
 *   update <n> <hz>      → a task posts new values to the first n PVs at hz (0 stops)
 *   flood <n>            → posts to the first n PVs as fast as the event loop allows (0 stops)
 *   bounce <name>        → removes the PV and adds it back 200 ms later (clients see a disconnect)
 * `BENCH:IN` and `BENCH:ACC` are writable doubles whose write handler answers on the next event
 * loop turn, like a plugin's answer coming back from its Worker.
 */
import pino from "pino";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { benchPvs, Poster, posterCommands, serveCommands } from "./proc-lib.ts";

const count = Number(process.argv[2] ?? 1000);
const prefix = process.argv[3] ?? "BENCH:D";
const registry = new PvRegistry();
const poster = new Poster(benchPvs(registry, count, prefix));
const pluginLike = () => new Promise<void>((resolve) => setImmediate(resolve));
const inputs = ["BENCH:IN", "BENCH:ACC"];
const addInput = (name: string) =>
  registry.add({ name, kind: "double", writable: true }, pluginLike);
for (const name of inputs) addInput(name);
const server = new CaServer({
  registry,
  logger: pino({ level: "warn" }),
  config: {
    serverPort: 0,
    intfAddrs: ["127.0.0.1"],
    autoBeaconAddrList: false,
    // CA_BENCH_BEACONS=1: beacons to the local repeater (127.0.0.1:5065), as acctst expects.
    beaconAddrs: process.env.CA_BENCH_BEACONS === "1" ? ["127.0.0.1"] : [],
  },
});
await server.start();

console.log(`READY ${server.tcpPort}`);
await serveCommands({
  ...posterCommands(() => server.stats(), poster),
  bounce: ([name]) => {
    if (name === undefined || !inputs.includes(name)) return undefined;
    registry.remove(name);
    setTimeout(() => addInput(name), 200);
    return { ok: true };
  },
});
poster.stop();
await server.stop();
