/**
 * UDP side of the PVA server (docs/pva.md §Discovery): the search socket on the broadcast port
 * (shared with other servers on the host through SO_REUSEADDR, and joined to pvxs's loopback
 * fan-out group so searches another server re-sends reach us too), search replies, and beacons.
 * Unknown names are never answered unless the search demands a reply.
 */
import type dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIPv4 } from "node:net";
import { networkInterfaces } from "node:os";
import { bindUdp } from "../../common/udp.ts";
import { Cmd, splitDatagram } from "../codec/header.ts";
import {
  beginMessage,
  decodeSearch,
  encodeBeacon,
  encodeSearch,
  encodeSearchResponse,
  endMessage,
  SearchFlag,
  type SearchRequest,
} from "../codec/messages.ts";
import { Reader, Writer } from "../codec/wire.ts";

/** The loopback multicast group pvxs servers re-send unicast searches to (with ORIGIN_TAG). */
export const FANOUT_GROUP = "224.0.0.128";

/** What the UDP helpers log through: a pino Logger, or the search thread's relay to one. */
export interface LogLike {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

// Shared with the other protocol server: one home (src/common/udp.ts).
export { bindUdp };

export interface SearchHost {
  guid: Uint8Array;
  tcpPort: number;
  ignoreAddrs: Set<string>;
  claim(channels: Array<{ id: number; name: string }>): number[];
  stats: { searchDatagrams: number; searchReplies: number; badDatagrams: number };
  /** The address put in ORIGIN_TAG when fanning out (our bound address); null: no fan-out. */
  fanoutOrigin: string | null;
}

/** What to send for one datagram: replies, and the copy to fan out to local peers (if any). */
export interface DatagramResult {
  replies: Array<[Uint8Array, string, number]>;
  /** ORIGIN_TAG + SEARCH for the loopback group, when a unicast search came in directly. */
  forward: Uint8Array | null;
}

/**
 * Handles one datagram. `direct` is false for copies received through the loopback fan-out group.
 * A unicast search received directly is also fanned out (ORIGIN_TAG + the search with the unicast
 * flag cleared and the reply address filled in), so every server sharing the port on this host
 * sees it: a unicast datagram reaches only one of the sockets bound to a port.
 */
export function handleDatagram(
  host: SearchHost,
  msg: Uint8Array,
  from: { address: string; port: number },
  direct = true,
): DatagramResult {
  host.stats.searchDatagrams++;
  const out: DatagramResult = { replies: [], forward: null };
  if (host.ignoreAddrs.has(from.address)) return out;
  try {
    let tagged = false;
    for (const m of splitDatagram(msg)) {
      if (m.command === Cmd.ORIGIN_TAG) tagged = true;
      // A wildcard-bound socket also receives the group's copies: the fan-out socket answers those.
      if (direct && tagged && host.fanoutOrigin) return out;
      if (m.command !== Cmd.SEARCH || (m.flags & 0x40) !== 0) continue;
      const s = decodeSearch(new Reader(m.payload, m.le));
      const addr = s.replyAddr === "::" || s.replyAddr === "0.0.0.0" ? from.address : s.replyAddr;
      const port = s.replyPort === 0 ? from.port : s.replyPort;
      if (!replyable(addr, port)) continue;
      if (direct && !tagged && (s.flags & SearchFlag.UNICAST) !== 0 && host.fanoutOrigin) {
        out.forward = fanoutCopy(host.fanoutOrigin, m.le, {
          ...s,
          replyAddr: addr,
          replyPort: port,
        });
      }
      // pvxs only considers names when "tcp" is offered; a discovery ping offers nothing.
      const ids = s.protocols.includes("tcp") ? host.claim(s.channels) : [];
      if (ids.length === 0 && (s.flags & SearchFlag.MUST_REPLY) === 0) continue;
      const w = new Writer(64, m.le);
      encodeSearchResponse(w, {
        guid: host.guid,
        seq: s.seq,
        addr: "0.0.0.0",
        port: host.tcpPort,
        protocol: "tcp",
        found: ids.length > 0,
        ids,
      });
      out.replies.push([w.bytes(), addr, port]);
      host.stats.searchReplies++;
    }
  } catch {
    host.stats.badDatagrams++;
  }
  return out;
}

/** ORIGIN_TAG (original destination) followed by the search, unicast flag cleared. */
function fanoutCopy(origin: string, le: boolean, s: SearchRequest): Uint8Array {
  const w = new Writer(128, le);
  const p = beginMessage(w, Cmd.ORIGIN_TAG, false);
  w.address(origin);
  endMessage(w, p);
  encodeSearch(w, { ...s, flags: s.flags & ~SearchFlag.UNICAST });
  return w.bytes();
}

/**
 * Whether a reply may go to addr:port: IPv4 unicast with a port (IPv6 is not served; a forged
 * multicast, broadcast or zero destination would only make the socket report errors).
 */
export function replyable(addr: string, port: number): boolean {
  if (port === 0 || !isIPv4(addr)) return false;
  const first = Number(addr.slice(0, addr.indexOf(".")));
  return first !== 0 && first < 224 && addr !== "255.255.255.255";
}

/**
 * The loopback fan-out: a socket bound to the group address on the shared port (it receives only
 * the group's datagrams) and joined on the loopback interface, plus a sender on an ephemeral port
 * whose own copies the receiver recognises and skips (they were already answered directly).
 * Null when the host does not allow it (then only unicast searches that reach us are answered).
 */
export async function openFanout(
  port: number,
  log: LogLike,
): Promise<{ rx: dgram.Socket; tx: dgram.Socket } | null> {
  let rx: dgram.Socket | null = null;
  try {
    rx = await bindUdp(FANOUT_GROUP, port);
    rx.addMembership(FANOUT_GROUP, "127.0.0.1");
    const tx = await bindUdp("127.0.0.1", 0);
    tx.setMulticastInterface("127.0.0.1");
    tx.setMulticastLoopback(true);
    tx.setMulticastTTL(1);
    return { rx, tx };
  } catch (err) {
    rx?.close();
    log.debug({ err }, "PVA: no loopback search fan-out (multicast on lo unavailable)");
    return null;
  }
}

/** Broadcast addresses of the up IPv4 interfaces (for EPICS_PVAS_AUTO_BEACON_ADDR_LIST). */
export function broadcastAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.family !== "IPv4" || i.internal) continue;
      const a = i.address.split(".").map(Number);
      const m = i.netmask.split(".").map(Number);
      out.add(a.map((x, k) => (x | (~(m[k] ?? 0) & 0xff)) & 0xff).join("."));
    }
  }
  return [...out];
}

/** Resolves "host[:port]" beacon destinations; unresolvable ones are logged and skipped. */
export async function resolveDests(
  entries: string[],
  defPort: number,
  log: LogLike,
): Promise<Array<{ address: string; port: number }>> {
  const out: Array<{ address: string; port: number }> = [];
  for (const e of entries) {
    const [h, p] = e.split(":");
    try {
      const { address } = await lookup(h ?? "", { family: 4 });
      out.push({ address, port: p ? Number(p) : defPort });
    } catch (err) {
      log.warn({ err, entry: e }, "PVA beacon destination not resolvable; skipped");
    }
  }
  return out;
}

/**
 * Periodic beacons: one at start, then every `period` seconds for ten, then every 12 x period
 * (pvxs: 15 s then 180 s). Clients use them to notice a new server and search again at once.
 */
export class Beacons {
  seq = 0;
  sent = 0;
  private ticks = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(
    private readonly socket: dgram.Socket,
    private readonly dests: Array<{ address: string; port: number }>,
    private readonly guid: Uint8Array,
    private readonly tcpPort: () => number,
    private readonly period: number,
    /** Told after each round of beacons (the search thread mirrors `sent` into shared memory). */
    private readonly onSent?: (sent: number) => void,
  ) {}

  start(): void {
    this.tick();
  }

  private tick = (): void => {
    if (this.stopped) return;
    const w = new Writer(64, false);
    encodeBeacon(w, {
      guid: this.guid,
      flags: 0,
      seq: this.seq,
      change: 0,
      addr: "0.0.0.0",
      port: this.tcpPort(),
      protocol: "tcp",
    });
    const b = w.bytes();
    for (const d of this.dests) {
      try {
        this.socket.send(b, d.port, d.address);
        this.sent++;
      } catch {
        // A closed socket or an unreachable destination: the next beacon tries again.
      }
    }
    this.onSent?.(this.sent);
    this.seq = (this.seq + 1) & 0xff;
    const delay = ++this.ticks <= 10 ? this.period : this.period * 12;
    this.timer = setTimeout(this.tick, delay * 1000);
    this.timer.unref?.();
  };

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
