/**
 * Starts a PVA server on random loopback ports over a fresh PvRegistry for a test. Logs are silent
 * unless IOCMNG_TEST_LOG=<pino level> is set.
 */
import pino from "pino";
import type { SearchWorker } from "../../src/common/search-worker.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import type { PvaServerConfig } from "../../src/pva/server/config.ts";
import { PvaServer } from "../../src/pva/server/server.ts";

export function pvaTestLogger(): pino.Logger {
  return pino({ level: process.env.IOCMNG_TEST_LOG ?? "silent" });
}

export async function startPva(
  opts: {
    registry?: PvRegistry;
    config?: Partial<PvaServerConfig>;
    version?: string;
    logger?: pino.Logger;
    searchWorker?: SearchWorker;
  } = {},
): Promise<{ registry: PvRegistry; server: PvaServer }> {
  const registry = opts.registry ?? new PvRegistry();
  const server = new PvaServer({
    source: registry,
    logger: opts.logger ?? pvaTestLogger(),
    config: {
      serverPort: 0,
      broadcastPort: 0,
      intfAddrs: ["127.0.0.1"],
      beaconAddrs: [],
      autoBeaconAddrList: false,
      ...opts.config,
    },
    ...(opts.version ? { version: opts.version } : {}),
    ...(opts.searchWorker ? { searchWorker: opts.searchWorker } : {}),
  });
  await server.start();
  return { registry, server };
}
