import { describe, expect, test } from "bun:test";
import {
  DEFAULT_PVA_CONFIG,
  PvaConfigError,
  pvaServerConfigFromEnv,
  resolvePvaConfig,
} from "../../src/pva/server/config.ts";

describe("EPICS_PVAS_* configuration", () => {
  test("defaults", () => {
    expect(pvaServerConfigFromEnv({})).toEqual({});
    const c = resolvePvaConfig();
    expect([c.serverPort, c.broadcastPort, c.beaconPeriod, c.autoBeaconAddrList]).toEqual([
      5075,
      5076,
      15,
      true,
    ]);
  });

  test("server variables win over the client fall-backs", () => {
    const c = pvaServerConfigFromEnv({
      EPICS_PVAS_SERVER_PORT: "6075",
      EPICS_PVA_SERVER_PORT: "7075",
      EPICS_PVA_BROADCAST_PORT: "6076",
      EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
      EPICS_PVA_ADDR_LIST: "10.0.0.255 host.example:5999",
      EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
      EPICS_PVAS_BEACON_PERIOD: "2.5",
      EPICS_PVAS_IGNORE_ADDR_LIST: "10.1.1.1",
      EPICS_PVA_CONN_TMO: "10",
    });
    expect(c).toEqual({
      serverPort: 6075,
      broadcastPort: 6076,
      intfAddrs: ["127.0.0.1"],
      beaconAddrs: ["10.0.0.255", "host.example:5999"],
      autoBeaconAddrList: false,
      beaconPeriod: 2.5,
      ignoreAddrs: ["10.1.1.1"],
      connTimeout: 10,
    });
    expect(resolvePvaConfig(c).maxMonitorQueue).toBe(DEFAULT_PVA_CONFIG.maxMonitorQueue);
  });

  test("bad values name the variable", () => {
    expect(() => pvaServerConfigFromEnv({ EPICS_PVAS_SERVER_PORT: "70000" })).toThrow(
      /EPICS_PVAS_SERVER_PORT/,
    );
    expect(() => pvaServerConfigFromEnv({ EPICS_PVAS_INTF_ADDR_LIST: "nope" })).toThrow(
      PvaConfigError,
    );
    expect(() => pvaServerConfigFromEnv({ EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "maybe" })).toThrow(
      /YES or NO/,
    );
    expect(() => pvaServerConfigFromEnv({ EPICS_PVAS_BEACON_PERIOD: "-1" })).toThrow(/seconds/);
    expect(() => resolvePvaConfig({ maxMonitorQueue: 1 })).toThrow(/maxMonitorQueue/);
  });
});
