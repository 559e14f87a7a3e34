/**
 * The CA warm-up (src/ca/server/warmup.ts, search-warmup.ts) runs the hot paths on synthetic
 * traffic at boot. These tests pin that it really runs them (its own counters), that it leaves
 * nothing behind that a client or the server's stats could see, that it stops with the server,
 * and that the product can switch it off (IOCMNG_CA_WARMUP).
 */
import { afterEach, expect, test } from "bun:test";
import dgram from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { AuditLog } from "../../../src/access/audit.ts";
import { SecurityPolicy } from "../../../src/access/policy.ts";
import { AccessSecurity } from "../../../src/access/security.ts";
import { CaServer } from "../../../src/ca/server/index.ts";
import { warmupEnabled } from "../../../src/ca/server/warmup.ts";
import { loadConfig } from "../../../src/config.ts";
import { PvRegistry } from "../../../src/pv/registry.ts";
import { type RunningServer, startServer } from "../../../src/server.ts";
import { freeTcpPort, freeUdpPort } from "../../e2e/lib/server.ts";
import { type CaHarness, runPy, startCaServer, testLogger } from "../../helpers/ca-harness.ts";
import { RawCaClient, searchDatagram } from "../../helpers/ca-raw.ts";

let h: CaHarness | null = null;
let srv: RunningServer | null = null;
let root: string | null = null;

afterEach(async () => {
  await h?.stop();
  h = null;
  await srv?.stop();
  srv = null;
  if (root) await rm(root, { recursive: true, force: true });
  root = null;
});

/** A debug-level logger whose lines (parsed) land in `lines`. */
function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split("\n")) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

async function until(ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok() && Date.now() < end) await Bun.sleep(20);
}

test("the warm-up runs the circuit and search paths and leaves no channel, PV or counter behind", async () => {
  const { logger, lines } = capture();
  h = await startCaServer({ logger });
  h.registry.add({ name: "WU:REAL", kind: "double", initial: 42 });
  const before = h.server.stats();
  const r = await h.server.warmUp({ rounds: 2, channels: 300, searchDatagrams: 200 });
  expect(r.rounds).toBe(2);
  expect(r.cancelled).toBe(false);
  // Per round: VERSION, HOST_NAME, CLIENT_NAME; 300 CREATE_CHAN and READ_NOTIFY; a burst of 3,000
  // READ_NOTIFY in one chunk; 200 EVENT_ADD and EVENT_CANCEL; 150 CLEAR_CHANNEL. Once before the
  // rounds, the primer: the same 3, then CREATE_CHAN, READ_NOTIFY, EVENT_ADD, EVENT_CANCEL and
  // CLEAR_CHANNEL on 16 channels.
  expect(r.requests).toBe(2 * (3 + 300 + 300 + 3000 + 200 + 200 + 150) + 3 + 5 * 16);
  // Three posted updates per subscription reached the circuit (plus its first value).
  expect(r.updatesSent).toBeGreaterThanOrEqual(2 * 200 * 3);
  await until(() => lines.some((l) => l.msg === "CA search path warmed up"));
  const search = lines.find((l) => l.msg === "CA search path warmed up");
  expect(search?.datagrams).toBe("200");
  // 31 names per datagram, 3 of them not served.
  expect(search?.replies).toBe(String(200 * 28));

  expect(h.server.stats()).toEqual(before);
  expect(before.requests).toBe(0);
  expect(before.searchDatagrams).toBe(0);
  expect([...h.registry.names()]).toEqual(["WU:REAL"]);
  // A real client finds the real PV and not the warm-up's names.
  const got = await runPy(
    h.port,
    `out([epics.caget("WU:REAL", timeout=5), epics.caget("IOCMNG:WARMUP:D0", timeout=1)])`,
  );
  expect(got).toEqual([42, null]);
  const after = h.server.stats();
  expect(after.circuitsDropped).toBe(0);
  expect(after.internalErrors).toBe(0);
});

test("with an access policy the warm-up asks it for rights only: nothing audited, nothing changed", async () => {
  // The product always has a policy; the warm-up's circuits use it (the code they compile is then
  // the code real circuits run). Its identity gets no read access here, so its reads are refused.
  root = await mkdtemp(join(tmpdir(), "iocmng-warmup-acf-"));
  const file = join(root, "rules.acf");
  await Bun.write(
    file,
    "UAG(ops) {operator}\nASG(DEFAULT) {\n  RULE(1, READ) { UAG(ops) }\n  RULE(1, WRITE) { UAG(ops) }\n}\n",
  );
  const registry = new PvRegistry();
  registry.add({ name: "WU:SP", kind: "double", writable: true, initial: 5 });
  const security = await AccessSecurity.open({ file, source: registry, hostMode: "names" });
  const audit = new AuditLog({ pluginOf: () => "p" });
  const server = new CaServer({
    registry,
    logger: testLogger(),
    access: new SecurityPolicy(security, audit),
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
  });
  await server.start();
  try {
    const before = server.stats();
    const r = await server.warmUp({ rounds: 2, channels: 100, searchDatagrams: 50 });
    expect(r.cancelled).toBe(false);
    expect(r.requests).toBe(2 * (3 + 100 + 100 + 3000 + 100 + 100 + 50) + 3 + 5 * 16);
    expect(audit.plugins()).toEqual([]);
    expect(server.stats()).toEqual(before);
    // A real client with the rights the rules give it.
    const c = await RawCaClient.handshake(server.tcpPort, "operator");
    const ch = await c.createChannel("WU:SP", 1);
    expect(ch.rights).toBe(3);
    c.close();
  } finally {
    await server.stop();
    security.close();
  }
});

test("the warm-up ends early when the server stops", async () => {
  h = await startCaServer();
  const run = h.server.warmUp({ rounds: 1000, channels: 500 });
  await h.stop();
  h = null;
  const r = await run;
  expect(r.cancelled).toBe(true);
  expect(r.rounds).toBeLessThan(1000);
});

test("the warm-up gives way to the first real client: a circuit ends the circuit half, a search the search half", async () => {
  const { logger, lines } = capture();
  h = await startCaServer({ logger });
  h.registry.add({ name: "WU:REAL", kind: "double", initial: 7 });
  const run = h.server.warmUp({ rounds: 1000, channels: 500, searchDatagrams: 10_000_000 });
  const c = await RawCaClient.handshake(h.port);
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
  udp.send(searchDatagram(1, [["WU:REAL", 1]]), h.port, "127.0.0.1");
  const r = await run;
  expect(r.cancelled).toBe(true);
  expect(r.rounds).toBeLessThan(1000);
  await until(() => lines.some((l) => l.msg === "CA search path warmed up"));
  udp.close();
  const search = lines.find((l) => l.msg === "CA search path warmed up");
  expect(search?.cancelled).toBe("true");
  expect(Number(search?.datagrams)).toBeLessThan(10_000_000);
  // The real client is served as usual.
  const ch = await c.createChannel("WU:REAL", 1);
  expect(ch.count).toBe(1);
  c.close();
});

test("IOCMNG_CA_WARMUP switches it off; a bad value is an error naming it", () => {
  expect(warmupEnabled({})).toBe(true);
  for (const on of ["", "1", "yes", "TRUE", "on"])
    expect(warmupEnabled({ IOCMNG_CA_WARMUP: on })).toBe(true);
  for (const off of ["0", "no", "false", "OFF", " No "])
    expect(warmupEnabled({ IOCMNG_CA_WARMUP: off })).toBe(false);
  for (const bad of ["2", "maybe", "nope"])
    expect(() => warmupEnabled({ IOCMNG_CA_WARMUP: bad })).toThrow(/IOCMNG_CA_WARMUP="/);
});

/** The product server (src/server.ts) on loopback with `env`, logging at debug into `lines`. */
async function product(env: Record<string, string>) {
  const { logger, lines } = capture();
  root = await mkdtemp(join(tmpdir(), "iocmng-warmup-"));
  const config = loadConfig({
    IOCMNG_HOST: "127.0.0.1",
    IOCMNG_PORT: String(freeTcpPort()),
    IOCMNG_STATE_DIR: join(root, "state"),
    IOCMNG_PLUGINS_DIR: join(root, "plugins"),
  });
  srv = await startServer(config, logger, {
    env,
    caConfig: { serverPort: await freeUdpPort(), intfAddrs: ["127.0.0.1"], beaconAddrs: [] },
    pvaConfig: false,
  });
  return lines;
}

test("the product server warms CA up at start unless IOCMNG_CA_WARMUP=0", async () => {
  let lines = await product({});
  await until(() => lines.some((l) => l.msg === "CA hot paths warmed up"));
  const done = lines.find((l) => l.msg === "CA hot paths warmed up");
  expect(done?.cancelled).toBe(false);
  expect(done?.rounds).toBeGreaterThan(0);
  await srv?.stop();
  srv = null;
  await rm(root as string, { recursive: true, force: true });

  lines = await product({ IOCMNG_CA_WARMUP: "0" });
  // Long enough for the default warm-up to have ended several times over (see the case above).
  await Bun.sleep(3000);
  expect(lines.some((l) => String(l.msg).includes("warmed up"))).toBe(false);
}, 60_000);
