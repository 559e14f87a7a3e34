/**
 * One search Worker for the CA and the PVA server (src/common/search-worker.ts), as `iocmng serve`
 * runs them: both protocols' searches are answered from it over real UDP sockets, a crash of the
 * Worker brings both sessions back on their ports with the current names, stopping one server
 * leaves the other answering, and a session module that cannot be loaded fails the bind with its
 * reason instead of hanging the start.
 */
import { afterEach, expect, test } from "bun:test";
import dgram from "node:dgram";
import pino from "pino";
import { CMD } from "../../src/ca/codec/constants.ts";
import { parseDatagram } from "../../src/ca/codec/udp.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import type { NameMirrorInit } from "../../src/common/name-mirror.ts";
import { SearchThreadHost } from "../../src/common/search-thread-host.ts";
import { SearchWorker } from "../../src/common/search-worker.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import { searchDatagram } from "../helpers/ca-raw.ts";
import { udpSearch } from "../helpers/pva-client.ts";
import { startPva } from "../helpers/pva-harness.ts";

let stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.reverse()) await s();
  stops = [];
});

/** A logger whose lines are kept, to see what each search thread reported. */
function keptLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
  return { logger, lines };
}

async function startBoth(logger: pino.Logger) {
  const registry = new PvRegistry();
  const worker = new SearchWorker(logger);
  const ca = new CaServer({
    registry,
    logger,
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
    searchWorker: worker,
  });
  const [, { server: pva }] = await Promise.all([
    ca.start(),
    startPva({ registry, logger, searchWorker: worker }),
  ]);
  stops.push(
    () => ca.stop(),
    () => pva.stop(),
  );
  return { registry, worker, ca, pva };
}

/** True if a CA search for `name` sent to `port` is answered within `waitMs`. */
async function caFound(port: number, name: string, waitMs = 1000): Promise<boolean> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  // A closed port answers with ICMP, reported as an error event: not the test's concern.
  s.on("error", () => {});
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), waitMs);
      s.on("message", (m) => {
        const msgs = parseDatagram(new Uint8Array(m)).messages;
        if (msgs.some(({ header }) => header.command === CMD.SEARCH && header.p2 === 77)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      s.send(searchDatagram(1, [[name, 77]]), port, "127.0.0.1");
    });
  } finally {
    s.close();
  }
}

const pvaFound = async (port: number, name: string) => (await udpSearch(port, [name])).length === 1;

test("the CA and PVA servers answer their searches from one search Worker", async () => {
  const { registry, worker, ca, pva } = await startBoth(pino({ level: "silent" }));
  expect(worker.sessionCount).toBe(2);
  // No await between add() and the searches: each session sees the add before answering.
  registry.add({ name: "SW:ONE", kind: "double" });
  expect(await caFound(ca.udpPort, "SW:ONE")).toBe(true);
  expect(await pvaFound(pva.udpPort, "SW:ONE")).toBe(true);
  registry.remove("SW:ONE");
  expect(await caFound(ca.udpPort, "SW:ONE", 300)).toBe(false);
  expect(await pvaFound(pva.udpPort, "SW:ONE")).toBe(false);
  // Each session keeps its own counters.
  expect(ca.stats().searchReplies).toBe(1);
  expect(pva.stats().searchReplies).toBe(1);
});

test("a crash of the shared Worker brings both sessions back on their ports with the current names", async () => {
  const { logger, lines } = keptLogger();
  const { registry, worker, ca, pva } = await startBoth(logger);
  const ports = [ca.udpPort, pva.udpPort];
  ca.crashSearchThreadForTest();
  // Added while no Worker runs: each new session starts from the registry.
  registry.add({ name: "SW:AFTER", kind: "long" });
  let caOk = false;
  let pvaOk = false;
  for (let i = 0; i < 50 && !(caOk && pvaOk); i++) {
    caOk ||= await caFound(ca.udpPort, "SW:AFTER", 200);
    pvaOk ||= await pvaFound(pva.udpPort, "SW:AFTER");
  }
  expect([caOk, pvaOk]).toEqual([true, true]);
  expect([ca.udpPort, pva.udpPort]).toEqual(ports);
  expect(worker.sessionCount).toBe(2);
  // Both sessions lived in the Worker that ended: both report it.
  const ended = lines.filter((l) => l.includes("search thread ended unexpectedly"));
  expect(ended.some((l) => l.includes("CA search thread"))).toBe(true);
  expect(ended.some((l) => l.includes("PVA search thread"))).toBe(true);
}, 30_000);

test("stopping one server leaves the other answering; the Worker ends with the last session", async () => {
  const { registry, worker, ca, pva } = await startBoth(pino({ level: "silent" }));
  registry.add({ name: "SW:KEEP", kind: "double" });
  const pvaPort = pva.udpPort;
  await pva.stop();
  expect(worker.sessionCount).toBe(1);
  expect(await caFound(ca.udpPort, "SW:KEEP")).toBe(true);
  // The PVA port was closed with its session: nothing answers there any more.
  expect(await pvaFound(pvaPort, "SW:KEEP")).toBe(false);
  await ca.stop();
  expect(worker.sessionCount).toBe(0);
  // A server started later on the same SearchWorker gets a new Worker.
  const again = new CaServer({
    registry,
    logger: pino({ level: "silent" }),
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
    searchWorker: worker,
  });
  await again.start();
  stops.push(() => again.stop());
  expect(await caFound(again.udpPort, "SW:KEEP")).toBe(true);
});

/** A message of the test thread: only its failures to load are looked at. */
type AnyMessage = { t: string } & Record<string, unknown>;

/** A search thread whose session module is given: for the load failures below. */
class ModuleThread extends SearchThreadHost<AnyMessage> {
  constructor(
    private readonly module: string,
    logger: pino.Logger,
  ) {
    super("TEST", 3, "nothing is answered", logger);
    this.start([]);
  }
  bind(): Promise<string> {
    return this.request({ t: "bind" }).then((r) => (r.t === "bindError" ? r.message : r.t));
  }
  protected sessionModule(): string {
    return this.module;
  }
  protected snapshot(): string[] {
    return [];
  }
  protected init(mirror: NameMirrorInit, counters: SharedArrayBuffer): AnyMessage {
    return { t: "init", ...mirror, counters };
  }
  protected rebind(): null {
    return null;
  }
  protected closeMessage(): AnyMessage {
    return { t: "close" };
  }
}

test("a session module that cannot be loaded fails the bind with its reason, and stop() returns", async () => {
  const { logger, lines } = keptLogger();
  const missing = new URL("./no-such-session-module.ts", import.meta.url).href;
  // A real module, but not a session module: it has no attachSearchSession.
  const wrong = new URL("../../src/common/name-mirror.ts", import.meta.url).href;
  for (const module of [missing, wrong]) {
    const t = new ModuleThread(module, logger);
    const reason = await t.bind();
    expect(reason).toContain(module);
    if (module === wrong) expect(reason).toContain("exports no attachSearchSession");
    await t.stop();
  }
  expect(lines.filter((l) => l.includes("TEST search thread cannot start")).length).toBe(2);
});
