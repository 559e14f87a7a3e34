/**
 * CA server configuration: defaults, the EPICS_CAS_* / EPICS_CA_* environment variables (rsrv's
 * semantics, docs/ca-protocol-facts.md "Ports and environment") and validation. Bad values raise CaConfigError naming the variable, so a typo
 * in a deployment fails at start instead of silently serving on the wrong port.
 */
import { isIPv4 } from "node:net";

/** Everything the CA server needs to run; every field has a default (see DEFAULT_CA_CONFIG). */
export interface CaServerConfig {
  /** UDP search port and preferred TCP port (TCP falls back to a random port if busy); 0 = random. */
  serverPort: number;
  /** Local IPv4 addresses to bind (empty = 0.0.0.0). */
  intfAddrs: string[];
  /** Multicast groups every UDP search socket joins (224.0.0.0/4 entries of EPICS_CAS_INTF_ADDR_LIST). */
  mcastGroups: string[];
  /** Extra beacon destinations "host[:port]" (default port = beaconPort). */
  beaconAddrs: string[];
  /** Add the broadcast address of every (bound) interface to the beacon destinations. */
  autoBeaconAddrList: boolean;
  /** Destination port of beacons (the CA repeater port). */
  beaconPort: number;
  /** Longest beacon interval in seconds; beacons start at 0.02 s and double up to it. */
  beaconPeriod: number;
  /** TTL of multicast beacons. */
  mcastTtl: number;
  /** UDP datagrams from these source IPs are dropped. */
  ignoreAddrs: string[];
  /** Largest DBR payload sent or accepted (bytes); null = no fixed limit (EPICS_CA_AUTO_ARRAY_BYTES). */
  maxArrayBytes: number | null;
  /** Longest PV name accepted in searches and CREATE_CHAN (bytes, without the NUL). */
  maxNameLength: number;
  /** Channels one circuit may hold open. */
  maxChannelsPerCircuit: number;
  /** Subscriptions one circuit may hold. */
  maxSubscriptionsPerCircuit: number;
  /** TCP circuits one client IP may hold open at once. */
  maxCircuitsPerClient: number;
  /** Largest incoming message payload; bigger ones are skipped with ECA_TOLARGE (bytes). */
  maxPayloadBytes: number;
  /**
   * Requests a circuit may have waiting behind pending writes (plus the writes themselves) before
   * it stops reading its socket until they drain: backpressure, never refusals.
   */
  maxPendingWritesPerCircuit: number;
  /** Unsent reply bytes a circuit may accumulate before it is dropped (monitors coalesce instead). */
  maxQueuedBytesPerCircuit: number;
  /**
   * SCHED_FIFO priority the main thread and the search thread take at start when the process may
   * (src/common/realtime.ts); 0 = ordinary scheduling. `iocmng serve` sets it from
   * IOCMNG_RT_PRIORITY (default 0); a CaServer made directly (tests) stays ordinary.
   */
  realtimePriority: number;
}

/** Defaults: rsrv's where it has one, otherwise bounds generous enough for archivers and gateways. */
export const DEFAULT_CA_CONFIG: Readonly<CaServerConfig> = Object.freeze({
  serverPort: 5064,
  intfAddrs: [],
  mcastGroups: [],
  beaconAddrs: [],
  autoBeaconAddrList: true,
  beaconPort: 5065,
  beaconPeriod: 15,
  mcastTtl: 1,
  ignoreAddrs: [],
  maxArrayBytes: null,
  maxNameLength: 1007,
  maxChannelsPerCircuit: 200_000,
  maxSubscriptionsPerCircuit: 400_000,
  maxCircuitsPerClient: 512,
  maxPayloadBytes: 64 * 1024 * 1024,
  maxPendingWritesPerCircuit: 4096,
  maxQueuedBytesPerCircuit: 256 * 1024 * 1024,
  realtimePriority: 0,
});

/** A configuration value is invalid; the message names the variable or field. */
export class CaConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaConfigError";
  }
}

function isMulticast(ip: string): boolean {
  const first = Number(ip.split(".")[0]);
  return first >= 224 && first <= 239;
}

function parsePort(name: string, raw: string, allowZero: boolean): number {
  const t = raw.trim();
  const n = /^\d+$/.test(t) ? Number(t) : Number.NaN;
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw new CaConfigError(
      `${name}=${JSON.stringify(raw)}: expected a port number ${allowZero ? 0 : 1}..65535`,
    );
  }
  return n;
}

function splitList(raw: string | undefined): string[] {
  return (raw ?? "").split(/\s+/).filter((s) => s !== "");
}

function parseIpList(name: string, raw: string | undefined): string[] {
  const out = splitList(raw);
  for (const ip of out) {
    if (!isIPv4(ip)) throw new CaConfigError(`${name}: "${ip}" is not an IPv4 address`);
  }
  return out;
}

/** Validates one "host[:port]" beacon destination; returns it unchanged. */
function checkHostPort(name: string, entry: string): string {
  const m = /^([^:\s]+)(?::([^:]*))?$/.exec(entry);
  const host = m?.[1];
  if (!m || host === undefined || !/^[A-Za-z0-9.-]+$/.test(host)) {
    throw new CaConfigError(`${name}: "${entry}" is not host[:port]`);
  }
  if (m[2] !== undefined) parsePort(`${name} entry ${entry}`, m[2], false);
  return entry;
}

function parsePositive(name: string, raw: string): number {
  const n = Number(raw.trim());
  if (raw.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new CaConfigError(`${name}=${JSON.stringify(raw)}: expected a positive number`);
  }
  return n;
}

function nonEmpty(env: Record<string, string | undefined>, ...names: string[]) {
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v.trim() !== "") return { name, value: v };
  }
  return undefined;
}

/**
 * Builds the server configuration from EPICS environment variables (rsrv's rules, docs/ca-protocol-facts.md):
 * EPICS_CAS_SERVER_PORT (else EPICS_CA_SERVER_PORT), EPICS_CAS_INTF_ADDR_LIST,
 * EPICS_CAS_BEACON_ADDR_LIST, EPICS_CAS_AUTO_BEACON_ADDR_LIST, EPICS_CAS_BEACON_PORT (else
 * EPICS_CA_REPEATER_PORT), EPICS_CAS_BEACON_PERIOD (else EPICS_CA_BEACON_PERIOD),
 * EPICS_CAS_IGNORE_ADDR_LIST, EPICS_CA_MAX_ARRAY_BYTES with EPICS_CA_AUTO_ARRAY_BYTES, and
 * EPICS_CA_MCAST_TTL. Throws CaConfigError naming the variable for a bad value.
 */
export function caServerConfigFromEnv(env: Record<string, string | undefined>): CaServerConfig {
  const c: CaServerConfig = {
    ...DEFAULT_CA_CONFIG,
    intfAddrs: [],
    mcastGroups: [],
    beaconAddrs: [],
    ignoreAddrs: [],
  };
  const port = nonEmpty(env, "EPICS_CAS_SERVER_PORT", "EPICS_CA_SERVER_PORT");
  if (port) c.serverPort = parsePort(port.name, port.value, true);

  const intf = parseIpList("EPICS_CAS_INTF_ADDR_LIST", env.EPICS_CAS_INTF_ADDR_LIST);
  c.mcastGroups = intf.filter(isMulticast);
  c.intfAddrs = intf.filter((ip) => !isMulticast(ip));
  if (c.intfAddrs.includes("0.0.0.0") && c.intfAddrs.length > 1) {
    throw new CaConfigError(
      "EPICS_CAS_INTF_ADDR_LIST: 0.0.0.0 cannot be mixed with other addresses",
    );
  }

  c.beaconAddrs = splitList(env.EPICS_CAS_BEACON_ADDR_LIST).map((e) =>
    checkHostPort("EPICS_CAS_BEACON_ADDR_LIST", e),
  );
  const auto = env.EPICS_CAS_AUTO_BEACON_ADDR_LIST?.trim() ?? "";
  // rsrv: only the literal "yes" (any case) enables it; unset/empty means the default YES.
  c.autoBeaconAddrList = auto === "" || auto.toLowerCase() === "yes";

  const bport = nonEmpty(env, "EPICS_CAS_BEACON_PORT", "EPICS_CA_REPEATER_PORT");
  if (bport) c.beaconPort = parsePort(bport.name, bport.value, false);

  const period = nonEmpty(env, "EPICS_CAS_BEACON_PERIOD", "EPICS_CA_BEACON_PERIOD");
  if (period) c.beaconPeriod = parsePositive(period.name, period.value);

  c.ignoreAddrs = parseIpList("EPICS_CAS_IGNORE_ADDR_LIST", env.EPICS_CAS_IGNORE_ADDR_LIST);

  const ttl = nonEmpty(env, "EPICS_CA_MCAST_TTL");
  if (ttl) {
    const n = Number(ttl.value.trim());
    if (!Number.isInteger(n) || n < 1 || n > 255) {
      throw new CaConfigError(`EPICS_CA_MCAST_TTL=${JSON.stringify(ttl.value)}: expected 1..255`);
    }
    c.mcastTtl = n;
  }

  const autoArray = env.EPICS_CA_AUTO_ARRAY_BYTES?.trim() ?? "";
  const maxArray = nonEmpty(env, "EPICS_CA_MAX_ARRAY_BYTES");
  let maxArrayBytes: number | null = null;
  if (maxArray) {
    const n = Number(maxArray.value.trim());
    if (!Number.isInteger(n) || n < 0) {
      throw new CaConfigError(
        `EPICS_CA_MAX_ARRAY_BYTES=${JSON.stringify(maxArray.value)}: expected a byte count`,
      );
    }
    maxArrayBytes = Math.max(16384, n);
  }
  // rsrv (≥ R3.16.1): AUTO_ARRAY_BYTES defaults to YES, which ignores MAX_ARRAY_BYTES entirely.
  if (autoArray !== "" && autoArray.toLowerCase() !== "yes") {
    c.maxArrayBytes = maxArrayBytes ?? 16384;
    c.maxPayloadBytes = Math.min(c.maxPayloadBytes, c.maxArrayBytes + 24);
  }
  return c;
}

/** Merges a partial configuration over the defaults and checks every field. */
export function resolveCaConfig(partial: Partial<CaServerConfig> = {}): CaServerConfig {
  const c: CaServerConfig = { ...DEFAULT_CA_CONFIG, ...partial };
  const intField = (name: keyof CaServerConfig, min: number, max: number) => {
    const v = c[name];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new CaConfigError(`CA config ${name}: expected an integer ${min}..${max}, got ${v}`);
    }
  };
  intField("serverPort", 0, 65535);
  intField("beaconPort", 1, 65535);
  intField("mcastTtl", 1, 255);
  intField("maxNameLength", 1, 65535);
  intField("maxChannelsPerCircuit", 1, 2 ** 31);
  intField("maxSubscriptionsPerCircuit", 1, 2 ** 31);
  intField("maxCircuitsPerClient", 1, 2 ** 31);
  intField("maxPayloadBytes", 16, 2 ** 31);
  intField("maxPendingWritesPerCircuit", 1, 2 ** 31);
  intField("maxQueuedBytesPerCircuit", 65536, 2 ** 40);
  intField("realtimePriority", 0, 99);
  if (!(c.beaconPeriod > 0) || !Number.isFinite(c.beaconPeriod)) {
    throw new CaConfigError(`CA config beaconPeriod: expected seconds > 0, got ${c.beaconPeriod}`);
  }
  if (c.maxArrayBytes !== null && !(Number.isInteger(c.maxArrayBytes) && c.maxArrayBytes > 0)) {
    throw new CaConfigError(`CA config maxArrayBytes: expected null or bytes > 0`);
  }
  for (const ip of [...c.intfAddrs, ...c.ignoreAddrs, ...c.mcastGroups]) {
    if (!isIPv4(ip)) throw new CaConfigError(`CA config: "${ip}" is not an IPv4 address`);
  }
  for (const e of c.beaconAddrs) checkHostPort("CA config beaconAddrs", e);
  return c;
}
