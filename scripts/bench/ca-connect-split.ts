/**
 * Splits the connect-storm cost of the CA server into its UDP and TCP halves, measured as server
 * CPU (utime+stime from /proc/<pid>/stat) of a separate server process:
 *   UDP: 10 rounds of 10,000 searches sent like libca (datagrams of 31 names);
 *   TCP: 10 rounds of one circuit doing 10,000 CREATE_CHAN, 10,000 READ_NOTIFY, then closing.
 * Run: `bun scripts/bench/ca-connect-split.ts`. Prints server CPU per 10,000 channels for each half.
 */
import { CMD } from "../../src/ca/codec/constants.ts";
import { parseDatagram } from "../../src/ca/codec/udp.ts";
import { msg, nameBytes, RawCaClient, searchDatagram } from "../../test/helpers/ca-raw.ts";
import { cpuSeconds } from "./procfs.ts";

const N = 10_000;
const ROUNDS = 10;
const proc = Bun.spawn(["bun", "scripts/bench/ca-server-proc.ts", String(N)], {
  stdin: "pipe",
  stdout: "pipe",
  stderr: "inherit",
});
const reader = proc.stdout.getReader();
let buf = "";
while (!buf.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("server process exited");
  buf += new TextDecoder().decode(value);
}
const port = Number(buf.split("\n")[0]?.split(" ")[1]);
const cpu = (): number => cpuSeconds(proc.pid);
await Bun.sleep(300);

let got = 0;
let wake: () => void = () => {};
const udp = await Bun.udpSocket({
  hostname: "127.0.0.1",
  port: 0,
  socket: {
    data(_s, d) {
      // Replies to several request datagrams may share one datagram: count the SEARCH messages.
      for (const m of parseDatagram(new Uint8Array(d)).messages)
        if (m.header.command === CMD.SEARCH) got++;
      wake();
    },
  },
});
let c0 = cpu();
let lost = 0;
for (let r = 0; r < ROUNDS; r++) {
  got = 0;
  for (let i = 0; i < N; i += 31) {
    const names: Array<[string, number]> = [];
    for (let k = i; k < Math.min(i + 31, N); k++) names.push([`BENCH:D${k}`, k]);
    udp.send(searchDatagram(i, names), port, "127.0.0.1");
    if (i % 155 === 0) await Bun.sleep(1); // stay under the socket buffers
  }
  const deadline = Date.now() + 2000;
  while (got < N && Date.now() < deadline) {
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 50);
    });
  }
  lost += N - got;
}
const udpCpu = (cpu() - c0) / ROUNDS;
udp.close();

c0 = cpu();
for (let r = 0; r < ROUNDS; r++) {
  const c = await RawCaClient.handshake(port);
  c.send(...Array.from({ length: N }, (_, k) => msg(18, 0, 0, k, 13, nameBytes(`BENCH:D${k}`))));
  const sids: number[] = [];
  while (sids.length < N) sids.push((await c.next((m) => m.header.command === 18)).header.p2);
  c.received.length = 0;
  c.send(...sids.map((sid, k) => msg(15, 6, 1, sid, k)));
  for (let k = 0; k < N; k++) await c.next((m) => m.header.command === 15);
  c.close();
  await c.closed;
}
const tcpCpu = (cpu() - c0) / ROUNDS;
console.log(
  `connect storm split, server CPU per ${N.toLocaleString("en")} channels: UDP search ${(udpCpu * 1000).toFixed(1)} ms${lost ? ` (${lost} replies lost)` : ""}; TCP create+get+close ${(tcpCpu * 1000).toFixed(1)} ms`,
);
proc.stdin.end();
await proc.exited;
process.exit(0);
