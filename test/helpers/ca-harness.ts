/**
 * Test harness for the native CA server, reusable by any test that needs a real CA peer.
 *
 *   const h = await startCaServer();              // fresh PvRegistry, random TCP/UDP port on 127.0.0.1
 *   h.registry.add({ name: "T:X", kind: "double", writable: true });
 *   const r = await runPy(h.port, `out(epics.caget("T:X"))`);   // pyepics via /usr/bin/python3
 *   await h.stop();
 *
 * - The server binds 127.0.0.1 only, on a random port shared by UDP (search) and TCP; beacons go to
 *   127.0.0.1:<random> only (never broadcast). `h.env` holds the client variables
 *   (EPICS_CA_ADDR_LIST=127.0.0.1, EPICS_CA_AUTO_ADDR_LIST=NO, EPICS_CA_SERVER_PORT=<port>).
 * - `runPy(port, code)` runs `code` in a fresh python3 with `epics`, `json`, `time` imported and a
 *   helper `out(obj)` that hands a JSON value back (the last `out` wins; numpy values are converted).
 *   It is async on purpose: the server lives in the test's own event loop, so a blocking spawn would
 *   deadlock. A non-zero exit or a missing `out` rejects with python's stderr.
 * - `pyEnv(port)` gives the environment for spawning other clients (the C benchmark client, caget…).
 * - Logs are silent unless IOCMNG_TEST_LOG=<pino level> is set; IOCMNG_TEST_PY_ECHO=1 prints python's output.
 */
import pino from "pino";
import { CaServer, type CaServerConfig } from "../../src/ca/server/index.ts";
import { PvRegistry } from "../../src/pv/registry.ts";

/** A running server with its registry. */
export interface CaHarness {
  registry: PvRegistry;
  server: CaServer;
  /** The CA server port (UDP and TCP). */
  port: number;
  /** Environment for CA clients talking to this server only. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Logger for tests: silent by default. */
export function testLogger(): pino.Logger {
  return pino({ level: process.env.IOCMNG_TEST_LOG ?? "silent" });
}

/** Starts a CA server on 127.0.0.1 with a random port and a fresh (or given) registry. */
export async function startCaServer(
  opts: { registry?: PvRegistry; config?: Partial<CaServerConfig>; logger?: pino.Logger } = {},
): Promise<CaHarness> {
  const registry = opts.registry ?? new PvRegistry();
  const server = new CaServer({
    registry,
    logger: opts.logger ?? testLogger(),
    config: {
      serverPort: 0,
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
      beaconAddrs: [],
      ...opts.config,
    },
  });
  await server.start();
  const port = server.tcpPort;
  return { registry, server, port, env: pyEnv(port), stop: () => server.stop() };
}

/** Client environment pointing libca at one server on loopback. */
export function pyEnv(port: number): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(port),
    // Keep libca's repeater off the shared default port and fail fast on missing channels.
    EPICS_CA_REPEATER_PORT: String(20000 + (port % 20000)),
    EPICS_CA_MAX_ARRAY_BYTES: "100000000",
  };
}

const PRELUDE = `
import sys, json, time, os
import epics
def _conv(o):
    try:
        import numpy
        if isinstance(o, numpy.ndarray): return o.tolist()
        if isinstance(o, numpy.generic): return o.item()
    except ImportError:
        pass
    if isinstance(o, bytes): return o.decode('latin-1')
    if isinstance(o, (set, tuple)): return list(o)
    return str(o)
def out(obj):
    sys.stdout.write("\\n@@OUT@@" + json.dumps(obj, default=_conv) + "\\n")
    sys.stdout.flush()
`;

/** Runs a pyepics snippet against the server on `port`; resolves with what it passed to out(). */
export async function runPy(
  port: number,
  code: string,
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<unknown> {
  const proc = Bun.spawn(["/usr/bin/python3", "-c", `${PRELUDE}\n${code}`], {
    env: { ...pyEnv(port), ...opts.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timeout = setTimeout(() => proc.kill(), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, exit] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timeout);
  if (process.env.IOCMNG_TEST_PY_ECHO)
    console.error(`--- python stdout:\n${stdout}\n--- stderr:\n${stderr}`);
  const idx = stdout.lastIndexOf("@@OUT@@");
  if (exit !== 0 || idx < 0) {
    throw new Error(
      `python exited ${exit}${idx < 0 ? " without out()" : ""}:\n${stderr}\n${stdout}`,
    );
  }
  const line = stdout.slice(idx + 7).split("\n")[0] ?? "";
  return JSON.parse(line);
}
