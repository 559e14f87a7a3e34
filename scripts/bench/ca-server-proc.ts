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
import type { Pv } from "../../src/pv/pv.ts";
import { PvRegistry } from "../../src/pv/registry.ts";

const count = Number(process.argv[2] ?? 1000);
const prefix = process.argv[3] ?? "BENCH:D";
const registry = new PvRegistry();
const pvs: Pv[] = [];
for (let i = 0; i < count; i++) pvs.push(registry.add({ name: `${prefix}${i}`, kind: "double" }));
registry.add({ name: "BENCH:LAT", kind: "double", initial: 1.5 });
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

let timer: ReturnType<typeof setInterval> | null = null;
let flooding = false;
let tick = 0;

function postAll(n: number): void {
  tick++;
  for (let i = 0; i < n; i++) (pvs[i] as Pv).post(tick + i);
}

function stop(): void {
  if (timer !== null) clearInterval(timer);
  timer = null;
  flooding = false;
}

function reply(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

console.log(`READY ${server.tcpPort}`);
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
      stop();
      const n = Number(a);
      const hz = Number(b);
      if (hz > 0) timer = setInterval(() => postAll(n), 1000 / hz);
      reply({ ok: true });
    } else if (cmd === "flood") {
      stop();
      const n = Number(a);
      if (n > 0) {
        flooding = true;
        const loop = () => {
          if (!flooding) return;
          postAll(n);
          setImmediate(loop);
        };
        loop();
      }
      reply({ ok: true });
    } else if (cmd === "bounce" && a !== undefined && inputs.includes(a)) {
      registry.remove(a);
      setTimeout(() => addInput(a), 200);
      reply({ ok: true });
    } else if (cmd === "gc") {
      Bun.gc(true);
      reply({ rss: process.memoryUsage().rss });
    }
  }
}
await server.stop();
