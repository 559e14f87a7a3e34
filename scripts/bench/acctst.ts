/**
 * libca's own acceptance test (`acctst`, built with EPICS Base outside this repository) against
 * iocmng's CA server and, for timing, against softIoc. Not part of the tests or CI: it needs a
 * local EPICS Base build. Run: `bun scripts/bench/acctst.ts [iocmng] [softioc]` (default both),
 * with EPICS_BASE pointing at the build (default /work/ref/epics-base).
 *
 * The channel is a writable double whose write handler answers one event-loop turn later (a
 * plugin-like input PV: `BENCH:ACC` of ca-server-proc.ts); softIoc serves an `ao` record of the
 * same name. acctst's first step waits for the channel to be disconnected by force: the script
 * then removes the PV and adds it back (iocmng) or restarts the IOC on the same port (softIoc).
 * Prints pass/fail and the wall time of each run.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const BASE = process.env.EPICS_BASE ?? "/work/ref/epics-base";
const BIN = join(BASE, "bin/linux-x86_64");
const PV = "BENCH:ACC";

interface Target {
  port: number;
  forceDisconnect(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

async function lines(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void) {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk);
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      nl = buf.indexOf("\n");
    }
  }
}

async function startIocmng(): Promise<Target> {
  const proc = Bun.spawn(["bun", "scripts/bench/ca-server-proc.ts", "1"], {
    env: { ...process.env, CA_BENCH_BEACONS: "1" },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const port = await new Promise<number>((resolve) => {
    void lines(proc.stdout, (l) => {
      const m = /^READY (\d+)/.exec(l);
      if (m) resolve(Number(m[1]));
    });
  });
  return {
    port,
    async forceDisconnect() {
      proc.stdin.write(`bounce ${PV}\n`);
      proc.stdin.flush();
    },
    async stop() {
      proc.stdin.end();
      await proc.exited;
    },
  };
}

async function startSoftIoc(): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), "acctst-"));
  const db = join(dir, "acc.db");
  writeFileSync(db, `record(ao, "${PV}") { field(PREC, "3") }\n`);
  const port = await freePort();
  const env = {
    ...process.env,
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_CAS_SERVER_PORT: String(port),
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_ADDR_LIST: "127.0.0.1",
  };
  const spawn = () =>
    Bun.spawn([join(BIN, "softIoc"), "-S", "-d", db], { env, stdout: "ignore", stderr: "ignore" });
  let ioc = spawn();
  await Bun.sleep(1000);
  return {
    port,
    async forceDisconnect() {
      ioc.kill();
      await ioc.exited;
      ioc = spawn();
    },
    async stop() {
      ioc.kill();
      await ioc.exited;
    },
  };
}

async function run(name: string, start: () => Promise<Target>): Promise<void> {
  const t = await start();
  const env = {
    ...process.env,
    PATH: `${BIN}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(t.port),
  };
  const t0 = performance.now();
  // Line-buffered, so each step's progress line can be timed. ACCTST_STEPS=1 raises acctst's
  // interest level to 2: it then prints every step's name and its own time in seconds.
  const level = process.env.ACCTST_STEPS === "1" ? "2" : "0";
  const cmd = ["stdbuf", "-oL", join(BIN, "acctst"), PV, level];
  const proc = Bun.spawn(cmd, { env, stdout: "pipe", stderr: "pipe" });
  let forced = false;
  let out = "";
  const steps: string[] = [];
  // acctst prompts for the forced disconnect without a newline: watch the raw output.
  const done = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) {
      const text = dec.decode(chunk);
      const at = ((performance.now() - t0) / 1000).toFixed(1);
      for (const l of text.split("\n")) if (l.trim() !== "") steps.push(`${at} s  ${l.trim()}`);
      out += text;
      if (!forced && out.includes("Please force test channel to disconnect")) {
        forced = true;
        void t.forceDisconnect();
      }
    }
  })();
  const kill = setTimeout(() => proc.kill(), 600_000);
  const code = await proc.exited;
  clearTimeout(kill);
  await done;
  const err = await new Response(proc.stderr).text();
  const secs = (performance.now() - t0) / 1000;
  await t.stop();
  const ok = code === 0 && out.includes("Test Complete");
  console.log(`${name}: acctst ${ok ? "passed" : `FAILED (exit ${code})`} in ${secs.toFixed(2)} s`);
  if (process.env.ACCTST_STEPS === "1") console.log(steps.join("\n"));
  if (!ok) console.log(`${out.slice(-3000)}\n${err.slice(-3000)}`);
}

const which = process.argv.slice(2);
const targets: Record<string, () => Promise<Target>> = {
  iocmng: startIocmng,
  softioc: startSoftIoc,
};
console.log(`acctst, ${new Date().toISOString()}, EPICS Base at ${BASE}`);
for (const name of which.length > 0 ? which : Object.keys(targets)) {
  const start = targets[name];
  if (!start)
    throw new Error(`unknown target ${name}; choose from ${Object.keys(targets).join(", ")}`);
  await run(name, start);
}
