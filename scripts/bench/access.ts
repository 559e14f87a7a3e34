/**
 * Cost of access security per CA operation: put throughput (sequential puts with completion,
 * `caput -c`), get latency (sequential READ_NOTIFY round trips) and server CPU per put, for a
 * server without access security, with the audit trail only, and with a 50-rule access security
 * file. Client: libca through ffi/ in this process; server: scripts/bench/access-server-proc.ts.
 * Run: `bun scripts/bench/access.ts [puts] [gets]` (defaults 3000, 3000). Keep runs short.
 * Each client runs in a process of its own (`… client <port> [puts] [gets]`).
 */
import { LibcaClient } from "../../ffi/client.ts";

const args = process.argv[2] === "client" ? process.argv.slice(4) : process.argv.slice(2);
const PUTS = Number(args[0] ?? 3000);
const GETS = Number(args[1] ?? 3000);

interface Server {
  port: number;
  cpuUs(): Promise<number>;
  stop(): void;
}

async function startServer(mode: string): Promise<Server> {
  const proc = Bun.spawn(["bun", "scripts/bench/access-server-proc.ts", mode], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const line = async (): Promise<string> => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const l = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return l;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("server ended");
      buf += dec.decode(value);
    }
  };
  const port = Number((await line()).split(" ")[1]);
  return {
    port,
    async cpuUs() {
      proc.stdin.write("cpu\n");
      proc.stdin.flush();
      return JSON.parse(await line()).cpuUs as number;
    },
    stop: () => proc.kill(),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/** The client side, in a process of its own: libca reads EPICS_CA_* once per process. */
async function client(port: number): Promise<void> {
  process.env.EPICS_CA_ADDR_LIST = "127.0.0.1";
  process.env.EPICS_CA_AUTO_ADDR_LIST = "NO";
  process.env.EPICS_CA_SERVER_PORT = String(port);
  const ca = new LibcaClient();
  for (let i = 0; i < 300; i++) await ca.put("BENCH:SP", i, { wait: true }); // warm-up
  for (let i = 0; i < 300; i++) await ca.get("BENCH:SP", { as: "value" });
  console.log("WARM");
  await new Promise((r) => process.stdin.once("data", r));
  const t0 = performance.now();
  for (let i = 0; i < PUTS; i++) await ca.put("BENCH:SP", i, { wait: true });
  const putSecs = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ putSecs }));
  const lat: number[] = [];
  for (let i = 0; i < GETS; i++) {
    const t = performance.now();
    await ca.get("BENCH:SP", { as: "value" });
    lat.push((performance.now() - t) * 1000);
  }
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({ p50: pct(lat, 0.5), p99: pct(lat, 0.99) }));
  ca.close();
  process.exit(0);
}

async function measure(mode: string): Promise<string> {
  const srv = await startServer(mode);
  const proc = Bun.spawn(
    ["bun", import.meta.path, "client", String(srv.port), String(PUTS), String(GETS)],
    {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "ignore",
    },
  );
  const lines = (async function* () {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += dec.decode(chunk);
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        yield buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        nl = buf.indexOf("\n");
      }
    }
  })();
  try {
    const next = async () => (await lines.next()).value as string;
    while ((await next()) !== "WARM") {}
    const cpu0 = await srv.cpuUs();
    proc.stdin.write("go\n");
    proc.stdin.flush();
    const { putSecs } = JSON.parse(await next());
    const cpuPerPut = ((await srv.cpuUs()) - cpu0) / PUTS;
    const { p50, p99 } = JSON.parse(await next());
    const rate = Math.round(PUTS / putSecs);
    return `${mode}: puts ${rate}/s (server CPU ${cpuPerPut.toFixed(1)} µs/put), get p50 ${p50.toFixed(0)} µs p99 ${p99.toFixed(0)} µs`;
  } finally {
    proc.kill();
    srv.stop();
  }
}

/** Cost of one decision with the 50-rule file: cached (a channel's creation) and uncached. */
async function micro(): Promise<void> {
  const { parseAcf } = await import("../../src/access/acf.ts");
  const { CompiledAcf } = await import("../../src/access/rules.ts");
  const { fiftyRules } = await import("./access-rules.ts");
  const acf = new CompiledAcf(parseAcf(fiftyRules("bench")));
  acf.group("BENCH").setInput(0, 1);
  const N = 200_000;
  let t = performance.now();
  for (let i = 0; i < N; i++) acf.decide("BENCH", "bench", "host", 0);
  const cached = ((performance.now() - t) * 1e6) / N;
  const M = 20_000;
  t = performance.now();
  // Distinct users: every decision walks the 50 rules (and the cache is cleared as it fills).
  for (let i = 0; i < M; i++) acf.decide("BENCH", `user${i}`, "host", 0);
  const walk = ((performance.now() - t) * 1e6) / M;
  console.log(`decision, 50 rules: cached ${cached.toFixed(0)} ns, uncached ${walk.toFixed(0)} ns`);
}

if (process.argv[2] === "client") await client(Number(process.argv[3]));
else if (process.argv[2] === "micro") await micro();
else {
  const modes = process.env.BENCH_MODES?.split(",") ?? ["off", "audit", "acf50"];
  for (const mode of modes) console.log(await measure(mode));
  process.exit(0);
}
