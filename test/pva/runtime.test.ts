/**
 * The wiring: buildRuntime starts the PVA server next to CA by default, serving the runtime's
 * registry; IOCMNG_DISABLE_PVA=true or `pvaConfig: false` turns it off.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../../src/config.ts";
import { buildRuntime, type Runtime } from "../../src/server.ts";
import { PvaClient, udpSearch } from "../helpers/pva-client.ts";

const LOOPBACK_ENV = {
  EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
  EPICS_PVAS_SERVER_PORT: "0",
  EPICS_PVAS_BROADCAST_PORT: "0",
  EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
};
const CA = { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false };

let runtime: Runtime | null = null;
let dir = "";
afterEach(async () => {
  await runtime?.stop();
  runtime = null;
  rmSync(dir, { recursive: true, force: true });
});

function config() {
  dir = mkdtempSync(join(tmpdir(), "pva-runtime-"));
  return loadConfig({
    IOCMNG_STATE_DIR: join(dir, "state"),
    IOCMNG_PLUGINS_DIR: join(dir, "plugins"),
  });
}

test("PVA is on by default next to CA and serves the runtime's registry", async () => {
  runtime = await buildRuntime(config(), pino({ level: "silent" }), {
    env: LOOPBACK_ENV,
    caConfig: CA,
  });
  const pva = runtime.pva;
  if (!pva || !runtime.ca) throw new Error("PVA and CA expected");
  runtime.registry.add({ name: "RT:X", kind: "double", initial: 2.5 });
  expect((await udpSearch(pva.udpPort, ["RT:X"])).length).toBe(1);
  const c = await PvaClient.connect(pva.tcpPort);
  expect((await c.get("RT:X")).value.value).toBe(2.5);
  c.close();
});

test("IOCMNG_DISABLE_PVA=true and pvaConfig: false turn it off", async () => {
  runtime = await buildRuntime(config(), pino({ level: "silent" }), {
    env: { ...LOOPBACK_ENV, IOCMNG_DISABLE_PVA: "true" },
    caConfig: CA,
  });
  expect(runtime.pva).toBeNull();
  await runtime.stop();
  runtime = await buildRuntime(config(), pino({ level: "silent" }), {
    env: LOOPBACK_ENV,
    caConfig: CA,
    pvaConfig: false,
  });
  expect(runtime.pva).toBeNull();
  expect(runtime.ca).not.toBeNull();
});
