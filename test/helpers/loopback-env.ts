/**
 * The EPICS environment of a spawned server kept on loopback: CA on `caPort`, beacons to
 * `beaconPort` (a free local port, so none reach a real repeater), pvAccess (on by default) on
 * random ports without beacons.
 */
export function loopbackEpicsEnv(caPort: number, beaconPort: number): Record<string, string> {
  return {
    EPICS_CAS_SERVER_PORT: String(caPort),
    EPICS_CAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
    EPICS_PVAS_SERVER_PORT: "0",
    EPICS_PVAS_BROADCAST_PORT: "0",
    EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_AUTO_BEACON_ADDR_LIST: "NO",
    EPICS_CAS_BEACON_ADDR_LIST: `127.0.0.1:${beaconPort}`,
  };
}
