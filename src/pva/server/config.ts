/**
 * PVA server configuration: defaults, the EPICS_PVAS_* variables (with the EPICS_PVA_* fall-backs
 * pvxs uses) and per-connection bounds. A bad value raises PvaConfigError naming the variable, so a
 * deployment typo fails at start instead of serving on the wrong port.
 */
import { isIPv4 } from "node:net";

export interface PvaServerConfig {
  /** Preferred TCP port (a free one is used when taken); 0 = any. */
  serverPort: number;
  /** UDP search port, shared with other servers on the host (SO_REUSEADDR); 0 = any. */
  broadcastPort: number;
  /** Local IPv4 addresses to bind (empty = 0.0.0.0). */
  intfAddrs: string[];
  /** Beacon destinations "host[:port]" (default port = broadcastPort). */
  beaconAddrs: string[];
  /** Add every interface's broadcast address to the beacon destinations. */
  autoBeaconAddrList: boolean;
  /** Seconds between beacons for the first ten; then twelve times longer (pvxs: 15 s, 180 s). */
  beaconPeriod: number;
  /** UDP datagrams from these source IPs are dropped. */
  ignoreAddrs: string[];
  /** A connection silent this long (seconds) is closed; clients echo well within it. */
  connTimeout: number;
  /** Largest message (or segmented run) accepted, bytes. */
  maxMessageBytes: number;
  maxChannelsPerConnection: number;
  /** Operations (GET/PUT/MONITOR/RPC) one connection may hold. */
  maxOpsPerConnection: number;
  maxConnectionsPerPeer: number;
  /** Unsent bytes before the connection stops taking requests; monitors squash meanwhile. */
  maxQueuedBytesPerConnection: number;
  /**
   * Bytes all connections from one peer IP may hold together: unsent output plus partly received
   * input. The connection whose growth crosses it is closed (refusal logged once per peer).
   */
  maxBufferedBytesPerPeer: number;
  /** Largest monitor queueSize honoured (bigger requests are clamped). */
  maxMonitorQueue: number;
  /** Writes one connection may have waiting for their handlers. */
  maxPendingWritesPerConnection: number;
  /**
   * Send the normative types through the introspection cache (`0xFD` once, then `0xFE key`), as
   * pvAccessCPP servers do; false sends full descriptions every time, as softIocPVX does.
   */
  typeCache: boolean;
  /**
   * Answer RPC on the built-in `server` PV as pvxs servers do (`pvxlist host:port` lists the
   * channel names, `pvxlist -i` names the server); false refuses the channel like any unknown name.
   */
  serverPv: boolean;
}

export const DEFAULT_PVA_CONFIG: Readonly<PvaServerConfig> = Object.freeze({
  serverPort: 5075,
  broadcastPort: 5076,
  intfAddrs: [],
  beaconAddrs: [],
  autoBeaconAddrList: true,
  beaconPeriod: 15,
  ignoreAddrs: [],
  connTimeout: 40,
  maxMessageBytes: 64 * 1024 * 1024,
  maxChannelsPerConnection: 100_000,
  maxOpsPerConnection: 200_000,
  maxConnectionsPerPeer: 512,
  maxQueuedBytesPerConnection: 64 * 1024 * 1024,
  maxBufferedBytesPerPeer: 256 * 1024 * 1024,
  maxMonitorQueue: 1024,
  maxPendingWritesPerConnection: 4096,
  typeCache: true,
  serverPv: true,
});

export class PvaConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PvaConfigError";
  }
}

type Env = Record<string, string | undefined>;

function pick(env: Env, ...names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const v = env[name];
    if (v !== undefined && v.trim() !== "") return { name, value: v.trim() };
  }
  return undefined;
}

function port(name: string, raw: string): number {
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new PvaConfigError(`${name}=${JSON.stringify(raw)}: expected a port number 0..65535`);
  }
  return n;
}

function list(raw: string | undefined): string[] {
  return (raw ?? "").split(/[\s,]+/).filter((s) => s !== "");
}

function ipList(name: string, raw: string | undefined): string[] {
  const out = list(raw).map((e) => e.replace(/:\d+$/, ""));
  for (const ip of out) if (!isIPv4(ip)) throw new PvaConfigError(`${name}: "${ip}" is not IPv4`);
  return out;
}

function hostPort(name: string, entry: string): string {
  const m = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(entry);
  if (!m) throw new PvaConfigError(`${name}: "${entry}" is not host[:port]`);
  if (m[2] !== undefined) port(`${name} entry ${entry}`, m[2]);
  return entry;
}

function yesNo(name: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === "yes" || v === "y" || v === "true" || v === "1") return true;
  if (v === "no" || v === "n" || v === "false" || v === "0") return false;
  throw new PvaConfigError(`${name}=${JSON.stringify(raw)}: expected YES or NO`);
}

function seconds(name: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new PvaConfigError(`${name}=${JSON.stringify(raw)}: expected seconds > 0`);
  }
  return n;
}

/**
 * Reads EPICS_PVAS_SERVER_PORT (else EPICS_PVA_SERVER_PORT), EPICS_PVAS_BROADCAST_PORT (else
 * EPICS_PVA_BROADCAST_PORT), EPICS_PVAS_INTF_ADDR_LIST, EPICS_PVAS_BEACON_ADDR_LIST (else
 * EPICS_PVA_ADDR_LIST), EPICS_PVAS_AUTO_BEACON_ADDR_LIST (else EPICS_PVA_AUTO_ADDR_LIST),
 * EPICS_PVAS_BEACON_PERIOD (else EPICS_PVA_BEACON_PERIOD), EPICS_PVAS_IGNORE_ADDR_LIST,
 * EPICS_PVA_CONN_TMO and iocmng's own IOCMNG_PVA_TYPE_CACHE and IOCMNG_PVA_SERVER_PV (YES/NO).
 */
export function pvaServerConfigFromEnv(env: Env): Partial<PvaServerConfig> {
  const c: Partial<PvaServerConfig> = {};
  const sp = pick(env, "EPICS_PVAS_SERVER_PORT", "EPICS_PVA_SERVER_PORT");
  if (sp) c.serverPort = port(sp.name, sp.value);
  const bp = pick(env, "EPICS_PVAS_BROADCAST_PORT", "EPICS_PVA_BROADCAST_PORT");
  if (bp) c.broadcastPort = port(bp.name, bp.value);
  const intf = pick(env, "EPICS_PVAS_INTF_ADDR_LIST");
  if (intf) c.intfAddrs = ipList(intf.name, intf.value);
  const ba = pick(env, "EPICS_PVAS_BEACON_ADDR_LIST", "EPICS_PVA_ADDR_LIST");
  if (ba) c.beaconAddrs = list(ba.value).map((e) => hostPort(ba.name, e));
  const auto = pick(env, "EPICS_PVAS_AUTO_BEACON_ADDR_LIST", "EPICS_PVA_AUTO_ADDR_LIST");
  if (auto) c.autoBeaconAddrList = yesNo(auto.name, auto.value);
  const per = pick(env, "EPICS_PVAS_BEACON_PERIOD", "EPICS_PVA_BEACON_PERIOD");
  if (per) c.beaconPeriod = seconds(per.name, per.value);
  const ign = pick(env, "EPICS_PVAS_IGNORE_ADDR_LIST");
  if (ign) c.ignoreAddrs = ipList(ign.name, ign.value);
  const tmo = pick(env, "EPICS_PVA_CONN_TMO");
  if (tmo) c.connTimeout = seconds(tmo.name, tmo.value);
  const tc = pick(env, "IOCMNG_PVA_TYPE_CACHE");
  if (tc) c.typeCache = yesNo(tc.name, tc.value);
  const spv = pick(env, "IOCMNG_PVA_SERVER_PV");
  if (spv) c.serverPv = yesNo(spv.name, spv.value);
  return c;
}

/** Merges over the defaults and checks every field. */
export function resolvePvaConfig(partial: Partial<PvaServerConfig> = {}): PvaServerConfig {
  const c: PvaServerConfig = { ...DEFAULT_PVA_CONFIG, ...partial };
  const int = (k: keyof PvaServerConfig, min: number, max: number) => {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new PvaConfigError(`PVA config ${k}: expected an integer ${min}..${max}, got ${v}`);
    }
  };
  int("serverPort", 0, 65535);
  int("broadcastPort", 0, 65535);
  int("maxMessageBytes", 1024, 2 ** 31);
  int("maxChannelsPerConnection", 1, 2 ** 31);
  int("maxOpsPerConnection", 1, 2 ** 31);
  int("maxConnectionsPerPeer", 1, 2 ** 31);
  int("maxQueuedBytesPerConnection", 65536, 2 ** 40);
  int("maxBufferedBytesPerPeer", 65536, 2 ** 42);
  int("maxMonitorQueue", 2, 1 << 20);
  int("maxPendingWritesPerConnection", 1, 2 ** 31);
  for (const k of ["beaconPeriod", "connTimeout"] as const) {
    if (!(c[k] > 0) || !Number.isFinite(c[k])) {
      throw new PvaConfigError(`PVA config ${k}: expected seconds > 0, got ${c[k]}`);
    }
  }
  for (const k of ["typeCache", "serverPv"] as const) {
    if (typeof c[k] !== "boolean") {
      throw new PvaConfigError(`PVA config ${k}: expected true or false, got ${c[k]}`);
    }
  }
  for (const ip of [...c.intfAddrs, ...c.ignoreAddrs]) {
    if (!isIPv4(ip)) throw new PvaConfigError(`PVA config: "${ip}" is not an IPv4 address`);
  }
  for (const e of c.beaconAddrs) hostPort("PVA config beaconAddrs", e);
  return c;
}
