/**
 * The CA write path in one process (server and a raw client on loopback), for `bun --cpu-prof`:
 * rounds of N WRITEs (DBR_DOUBLE) to a plugin-like input PV (handler answering on the next
 * event-loop turn) followed by a READ_NOTIFY that must see the last one, optionally with a
 * DBR_GR_FLOAT subscription on the channel. Prints the time per write.
 * Run: `bun [--cpu-prof] scripts/bench/ca-writes-inproc.ts [ROUNDS=20] [N=10000] [sub]`.
 */
import pino from "pino";
import { CMD } from "../../src/ca/codec/constants.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { concat, eventBlock, f64, msg, RawCaClient } from "../../test/helpers/ca-raw.ts";

const rounds = Number(process.argv[2] ?? 20);
const n = Number(process.argv[3] ?? 10_000);
const withSub = process.argv[4] === "sub";
const registry = new PvRegistry();
registry.add(
  { name: "BENCH:IN", kind: "double", writable: true },
  () => new Promise<void>((resolve) => setImmediate(resolve)),
);
const server = new CaServer({
  registry,
  logger: pino({ level: "warn" }),
  config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
});
await server.start();
const c = await RawCaClient.handshake(server.tcpPort);
const { sid } = await c.createChannel("BENCH:IN", 1);
if (withSub) {
  c.send(msg(CMD.EVENT_ADD, 23, 1, sid, 7, eventBlock(5)));
  await c.next((m) => m.header.command === CMD.EVENT_ADD);
}
const times: number[] = [];
for (let r = 0; r < rounds; r++) {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < n; i++) parts.push(msg(CMD.WRITE, 6, 1, sid, 1, f64(r * n + i)));
  parts.push(msg(CMD.READ_NOTIFY, 6, 1, sid, 100 + r));
  const buf = concat(parts);
  const t0 = performance.now();
  await c.sendAll(buf);
  const rep = await c.next((m) => m.header.command === CMD.READ_NOTIFY, 120_000);
  times.push(performance.now() - t0);
  const got = new DataView(rep.payload.buffer, rep.payload.byteOffset).getFloat64(0);
  if (got !== r * n + n - 1) throw new Error(`read saw ${got}, not ${r * n + n - 1}`);
  c.received.length = 0;
}
times.sort((a, b) => a - b);
const med = times[times.length >> 1] as number;
console.log(
  `${rounds} x ${n} writes${withSub ? " (subscribed)" : ""}: median ${med.toFixed(1)} ms per round, ${((med * 1000) / n).toFixed(2)} µs per write`,
);
await server.stop();
process.exit(0);
