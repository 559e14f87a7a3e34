import { describe, expect, test } from "bun:test";
import pino from "pino";
import { loadConfig } from "../../src/config.ts";
import {
  isLoopbackHost,
  StartAbortedError,
  securityWarning,
  startServer,
} from "../../src/server.ts";
import { makeRepo } from "../helpers/git-e2e.ts";
import { DIAG_JOB } from "./lib/plugins.ts";
import { py } from "./lib/pyepics.ts";
import { freeTcpPort, freeUdpPort, makeDirs } from "./lib/server.ts";

/** The composition root in-process: what it starts, where it listens, and that it stops. */
describe("startServer", () => {
  test("serves REST and CA on the configured loopback ports and stops idempotently", async () => {
    const dirs = await makeDirs();
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const caPort = await freeUdpPort();
    const config = loadConfig({
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(freeTcpPort()),
      IOCMNG_STATE_DIR: dirs.stateDir,
      IOCMNG_PLUGINS_DIR: dirs.pluginsDir,
    });
    const srv = await startServer(config, logger, {
      env: {},
      pvaConfig: false, // these tests are about CA and REST; test/pva/runtime.test.ts covers PVA
      caConfig: {
        serverPort: caPort,
        intfAddrs: ["127.0.0.1"],
        autoBeaconAddrList: false,
        beaconAddrs: [`127.0.0.1:${await freeUdpPort()}`],
      },
    });
    try {
      expect(srv.httpPort).toBe(config.port);
      expect(srv.caUdpPort).toBe(caPort);
      const res = await fetch(`http://127.0.0.1:${srv.httpPort}/api/v1/health`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe("healthy");
      // A PV put in the registry is reachable by libca through the server's CA side.
      srv.registry.add({ name: "E2E:SERVER:PING", kind: "long", initial: 7 });
      const got = await py(`out(get("E2E:SERVER:PING"))`, {
        EPICS_CA_ADDR_LIST: "127.0.0.1",
        EPICS_CA_AUTO_ADDR_LIST: "NO",
        EPICS_CA_SERVER_PORT: String(caPort),
      });
      expect(got.result).toBe(7);
      // Bound to loopback without a token: no warning.
      expect(lines.join("")).not.toContain("IOCMNG_API_TOKEN is not set");
    } finally {
      await Promise.all([srv.stop(), srv.stop()]);
      await dirs.remove();
    }
    await expect(fetch(`http://127.0.0.1:${srv.httpPort}/api/v1/health`)).rejects.toThrow();
  }, 60_000);
});

describe("long requests", () => {
  test("a job run longer than the HTTP idle timeout still gets its answer", async () => {
    const dirs = await makeDirs();
    const repo = await makeRepo(DIAG_JOB);
    const config = loadConfig({
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(freeTcpPort()),
      IOCMNG_STATE_DIR: dirs.stateDir,
      IOCMNG_PLUGINS_DIR: dirs.pluginsDir,
    });
    const srv = await startServer(config, pino({ level: "silent" }), {
      env: {},
      pvaConfig: false, // these tests are about CA and REST; test/pva/runtime.test.ts covers PVA
      httpIdleTimeoutSec: 1,
      caConfig: {
        serverPort: await freeUdpPort(),
        intfAddrs: ["127.0.0.1"],
        autoBeaconAddrList: false,
        beaconAddrs: [`127.0.0.1:${await freeUdpPort()}`],
      },
    });
    try {
      const base = `http://127.0.0.1:${srv.httpPort}/api/v1`;
      const add = await fetch(`${base}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "long", git_url: repo.url, parameters: { sleep_ms: 6000 } }),
      });
      expect(add.status).toBe(201);
      // Without the per-request exemption Bun resets the connection once the idle timeout has
      // passed (Bun checks idle sockets every ~4 s, hence a 6 s job against a 1 s timeout).
      const run = await fetch(`${base}/jobs/long/run`, { method: "POST" });
      expect(run.status).toBe(200);
      expect(((await run.json()) as { ok: boolean }).ok).toBe(true);
    } finally {
      await srv.stop();
      await repo.remove();
      await dirs.remove();
    }
  }, 60_000);
});

describe("startServer failures", () => {
  test("a busy REST port rejects with a message naming it, and releases the CA port", async () => {
    const dirs = await makeDirs();
    // Held with SO_REUSEPORT, as another iocmng would if we let Elysia's default stand: the port
    // must still count as busy.
    const hold = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      reusePort: true,
      fetch: () => new Response("other"),
    });
    const caPort = await freeUdpPort();
    const config = loadConfig({
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(hold.port),
      IOCMNG_STATE_DIR: dirs.stateDir,
      IOCMNG_PLUGINS_DIR: dirs.pluginsDir,
    });
    const caConfig = {
      serverPort: caPort,
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
      beaconAddrs: [`127.0.0.1:${await freeUdpPort()}`],
    };
    try {
      await expect(
        startServer(config, pino({ level: "silent" }), { env: {}, pvaConfig: false, caConfig }),
      ).rejects.toThrow(`cannot listen on 127.0.0.1:${hold.port}`);
    } finally {
      hold.stop(true);
    }
    // The CA server was stopped on the way out: the same ports serve a new instance.
    const again = await startServer({ ...config, port: freeTcpPort() }, pino({ level: "silent" }), {
      env: {},
      pvaConfig: false, // these tests are about CA and REST; test/pva/runtime.test.ts covers PVA
      caConfig,
    });
    expect(again.caUdpPort).toBe(caPort);
    await again.stop();
    await dirs.remove();
  }, 60_000);
});

describe("security warning", () => {
  test("only when no token and bound beyond loopback", () => {
    expect(securityWarning({ host: "0.0.0.0", apiToken: null })).toContain("IOCMNG_API_TOKEN");
    expect(securityWarning({ host: "10.1.2.3", apiToken: null })).toContain("load and run code");
    expect(securityWarning({ host: "::", apiToken: null })).not.toBeNull();
    expect(securityWarning({ host: "0.0.0.0", apiToken: "t" })).toBeNull();
    expect(securityWarning({ host: "127.0.0.1", apiToken: null })).toBeNull();
    expect(securityWarning({ host: "localhost", apiToken: null })).toBeNull();
    expect(securityWarning({ host: "::1", apiToken: null })).toBeNull();
  });

  test("isLoopbackHost", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "LOCALHOST"]) {
      expect(isLoopbackHost(h)).toBe(true);
    }
    for (const h of ["0.0.0.0", "::", "192.168.1.1", "127.0.0.1.example.com", ""]) {
      expect(isLoopbackHost(h)).toBe(false);
    }
  });
});

describe("a signal during start-up", () => {
  test("SIGTERM while the restore waits on a slow initialize(): stop, exit 0, startServer rejects", async () => {
    const dirs = await makeDirs();
    const flag = `${dirs.root}/slow`;
    const entered = `${dirs.root}/entered`;
    const repo = await makeRepo({
      "slow.ts": `import { existsSync, writeFileSync } from "node:fs";
import { TaskBase } from "iocmng";
export default class Slow extends TaskBase {
  async initialize() {
    if (!existsSync(${JSON.stringify(flag)})) return;
    writeFileSync(${JSON.stringify(entered)}, "1");
    await new Promise<void>(() => {});
  }
  execute() {}
  cleanup() {}
}
`,
    });
    const config = loadConfig({
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: String(freeTcpPort()),
      IOCMNG_STATE_DIR: dirs.stateDir,
      IOCMNG_PLUGINS_DIR: dirs.pluginsDir,
    });
    const caConfig = async () => ({
      serverPort: await freeUdpPort(),
      intfAddrs: ["127.0.0.1"],
      autoBeaconAddrList: false,
      beaconAddrs: [`127.0.0.1:${await freeUdpPort()}`],
    });
    const silent = pino({ level: "silent" });
    try {
      const first = await startServer(config, silent, {
        env: {},
        pvaConfig: false,
        caConfig: await caConfig(),
      });
      expect(
        (await first.controller.add({ name: "slow", kind: "task", git_url: repo.url })).ok,
      ).toBe(true);
      await first.stop();
      await Bun.write(flag, "1");
      const codes: number[] = [];
      let exited: () => void = () => {};
      const exit = new Promise<void>((ok) => {
        exited = ok;
      });
      const listenersBefore = process.listenerCount("SIGTERM");
      const starting = startServer(config, silent, {
        env: {},
        pvaConfig: false, // these tests are about CA and REST; test/pva/runtime.test.ts covers PVA
        caConfig: await caConfig(),
        signals: {
          exit: (code) => {
            codes.push(code);
            exited();
          },
        },
      });
      const end = Date.now() + 30_000;
      while (!(await Bun.file(entered).exists())) {
        if (Date.now() > end) throw new Error("the restore never reached initialize()");
        await Bun.sleep(20);
      }
      // The handlers are in place while the restore still runs.
      expect(process.listenerCount("SIGTERM")).toBe(listenersBefore + 1);
      process.emit("SIGTERM", "SIGTERM");
      await exit;
      expect(codes).toEqual([0]);
      let err: unknown;
      try {
        await starting;
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(StartAbortedError);
      // Stopped means uninstalled, and nothing listens on the REST port.
      expect(process.listenerCount("SIGTERM")).toBe(listenersBefore);
      let refused = false;
      try {
        await fetch(`http://127.0.0.1:${config.port}/api/v1/health`);
      } catch {
        refused = true;
      }
      expect(refused).toBe(true);
    } finally {
      await repo.remove();
      await dirs.remove();
    }
  }, 60_000);
});
