import { describe, expect, test } from "bun:test";
import {
  CaConfigError,
  CaServer,
  caServerConfigFromEnv,
  DEFAULT_CA_CONFIG,
} from "../../../src/ca/server/index.ts";
import { PvRegistry } from "../../../src/pv/registry.ts";
import { testLogger } from "../../helpers/ca-harness.ts";

describe("caServerConfigFromEnv", () => {
  test("defaults with an empty environment", () => {
    expect(caServerConfigFromEnv({})).toEqual({ ...DEFAULT_CA_CONFIG });
  });

  test("EPICS_CAS_* win over EPICS_CA_* fallbacks", () => {
    const c = caServerConfigFromEnv({
      EPICS_CA_SERVER_PORT: "6000",
      EPICS_CAS_SERVER_PORT: "7000",
      EPICS_CA_REPEATER_PORT: "6001",
      EPICS_CA_BEACON_PERIOD: "30",
      EPICS_CAS_BEACON_PERIOD: "2.5",
    });
    expect(c.serverPort).toBe(7000);
    expect(c.beaconPort).toBe(6001);
    expect(c.beaconPeriod).toBe(2.5);
    expect(caServerConfigFromEnv({ EPICS_CA_SERVER_PORT: "6000" }).serverPort).toBe(6000);
  });

  test("address lists, multicast split, auto beacon flag, ignore list", () => {
    const c = caServerConfigFromEnv({
      EPICS_CAS_INTF_ADDR_LIST: " 10.0.0.5  239.1.2.3 ",
      EPICS_CAS_BEACON_ADDR_LIST: "10.0.0.255 host.example:5999",
      EPICS_CAS_AUTO_BEACON_ADDR_LIST: "no",
      EPICS_CAS_IGNORE_ADDR_LIST: "10.0.0.9",
    });
    expect(c.intfAddrs).toEqual(["10.0.0.5"]);
    expect(c.mcastGroups).toEqual(["239.1.2.3"]);
    expect(c.beaconAddrs).toEqual(["10.0.0.255", "host.example:5999"]);
    expect(c.autoBeaconAddrList).toBe(false);
    expect(c.ignoreAddrs).toEqual(["10.0.0.9"]);
    // rsrv: only a literal "yes" (any case) or unset enables it.
    expect(
      caServerConfigFromEnv({ EPICS_CAS_AUTO_BEACON_ADDR_LIST: "YES" }).autoBeaconAddrList,
    ).toBe(true);
    expect(caServerConfigFromEnv({ EPICS_CAS_AUTO_BEACON_ADDR_LIST: "1" }).autoBeaconAddrList).toBe(
      false,
    );
  });

  test("max array bytes: ignored unless EPICS_CA_AUTO_ARRAY_BYTES=NO, minimum 16384", () => {
    expect(caServerConfigFromEnv({ EPICS_CA_MAX_ARRAY_BYTES: "100000" }).maxArrayBytes).toBeNull();
    const c = caServerConfigFromEnv({
      EPICS_CA_MAX_ARRAY_BYTES: "100000",
      EPICS_CA_AUTO_ARRAY_BYTES: "NO",
    });
    expect(c.maxArrayBytes).toBe(100000);
    expect(c.maxPayloadBytes).toBe(100024);
    expect(
      caServerConfigFromEnv({ EPICS_CA_MAX_ARRAY_BYTES: "10", EPICS_CA_AUTO_ARRAY_BYTES: "no" })
        .maxArrayBytes,
    ).toBe(16384);
  });

  test.each([
    ["EPICS_CAS_SERVER_PORT", "http"],
    ["EPICS_CAS_SERVER_PORT", "70000"],
    ["EPICS_CA_SERVER_PORT", "-1"],
    ["EPICS_CAS_BEACON_PORT", "0"],
    ["EPICS_CAS_BEACON_PERIOD", "soon"],
    ["EPICS_CAS_BEACON_PERIOD", "-3"],
    ["EPICS_CAS_INTF_ADDR_LIST", "10.0.0.300"],
    ["EPICS_CAS_INTF_ADDR_LIST", "0.0.0.0 10.0.0.1"],
    ["EPICS_CAS_BEACON_ADDR_LIST", "10.0.0.255:port"],
    ["EPICS_CAS_IGNORE_ADDR_LIST", "somehost"],
    ["EPICS_CA_MAX_ARRAY_BYTES", "lots"],
    ["EPICS_CA_MCAST_TTL", "0"],
  ])("%s=%s is refused naming the variable", (name, value) => {
    expect(() => caServerConfigFromEnv({ [name]: value })).toThrow(CaConfigError);
    expect(() => caServerConfigFromEnv({ [name]: value })).toThrow(name);
  });

  test("the server constructor validates a partial config", () => {
    const registry = new PvRegistry();
    expect(
      () => new CaServer({ registry, logger: testLogger(), config: { maxNameLength: 0 } }),
    ).toThrow(/maxNameLength/);
    expect(
      () => new CaServer({ registry, logger: testLogger(), config: { intfAddrs: ["x"] } }),
    ).toThrow(CaConfigError);
  });
});

test("start() rejects clearly when the UDP port cannot be bound, and leaves nothing bound", async () => {
  const registry = new PvRegistry();
  const s = new CaServer({
    registry,
    logger: testLogger(),
    config: { serverPort: 5064, intfAddrs: ["192.0.2.1"], autoBeaconAddrList: false },
  });
  await expect(s.start()).rejects.toThrow(/cannot bind UDP 192\.0\.2\.1:5064/);
});
