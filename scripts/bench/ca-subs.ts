/**
 * Subscription churn, the shape of acctst's first step (multiSubscrDestroyNoLateCallbackTest):
 * rounds of N `DBR_GR_FLOAT` subscriptions added on one channel, the first update awaited, all N
 * cancelled. Client: scripts/bench/casubs.c on Debian's libca (built into /tmp/casubs). Runs
 * iocmng (`BENCH:ACC` of ca-server-proc.ts, the channel acctst uses) and softIoc (an `ao`)
 * alternately. Run: `bun scripts/bench/ca-subs.ts [ROUNDS=1000] [N=500] [REPS=2]`; SERVER_DIR=dir
 * runs iocmng from another checkout (for before/after figures).
 */
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { buildCaClient } from "./ca-client.ts";
import { cpuSeconds } from "./procfs.ts";

const CASUBS = process.env.CASUBS ?? "/tmp/casubs";
const SOFTIOC = join(process.env.EPICS_BASE ?? "/work/ref/epics-base", "bin/linux-x86_64/softIoc");
const SERVER_DIR = process.env.SERVER_DIR ?? join(import.meta.dir, "../..");
const [rounds = "1000", n = "500", reps = "2"] = process.argv.slice(2);

if (!existsSync(CASUBS)) buildCaClient(CASUBS, "casubs.c");

/** The client's line, with the server's CPU time during the run. */
async function measured(pid: number, port: number): Promise<string> {
  const cpu0 = cpuSeconds(pid);
  const out = await client(port);
  return `${out}; server CPU ${(cpuSeconds(pid) - cpu0).toFixed(2)} s`;
}

async function client(port: number): Promise<string> {
  const env = {
    ...process.env,
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(port),
  };
  const p = Bun.spawn([CASUBS, "BENCH:ACC", rounds, n], { env, stdout: "pipe", stderr: "ignore" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out.trim();
}

async function iocmng(): Promise<string> {
  const proc = Bun.spawn(["bun", join(SERVER_DIR, "scripts/bench/ca-server-proc.ts"), "1"], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!/READY (\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server exited");
    text += new TextDecoder().decode(value);
  }
  const out = await measured(proc.pid, Number(/READY (\d+)/.exec(text)?.[1]));
  proc.stdin.end();
  await proc.exited;
  return out;
}

async function softIoc(): Promise<string> {
  const db = join(mkdtempSync(join(tmpdir(), "casubs-")), "acc.db");
  writeFileSync(db, 'record(ao, "BENCH:ACC") { field(PREC, "3") }\n');
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  const env = {
    ...process.env,
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_SERVER_PORT: String(port),
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
  };
  const ioc = Bun.spawn([SOFTIOC, "-S", "-d", db], { env, stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(1000);
  const out = await measured(ioc.pid, port);
  ioc.kill();
  await ioc.exited;
  return out;
}

console.log(`ca-subs ${rounds} x ${n}, ${new Date().toISOString()}, iocmng from ${SERVER_DIR}`);
for (let i = 0; i < Number(reps); i++) {
  console.log(`iocmng:  ${await iocmng()}`);
  console.log(`softIoc: ${await softIoc()}`);
  console.log(
    `load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
}
