/**
 * UDP side of the PVA server (docs/pva.md §Discovery): the search socket on the broadcast port
 * (shared with other servers on the host through SO_REUSEADDR, and joined to pvxs's loopback
 * fan-out group so searches another server re-sends reach us too), search replies, and beacons.
 * Unknown names are never answered unless the search demands a reply.
 */
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { networkInterfaces } from "node:os";
import type { Logger } from "pino";
import { Cmd, splitDatagram } from "../codec/header.ts";
import { decodeSearch, encodeBeacon, encodeSearchResponse, SearchFlag } from "../codec/messages.ts";
import { Reader, Writer } from "../codec/wire.ts";

/** The loopback multicast group pvxs servers re-send unicast searches to (with ORIGIN_TAG). */
export const FANOUT_GROUP = "224.0.0.128";

export function bindUdp(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
    const onError = (e: Error) => {
      s.close();
      reject(e);
    };
    s.once("error", onError);
    s.bind(port, address, () => {
      s.off("error", onError);
      resolve(s);
    });
  });
}

export interface SearchHost {
  guid: Uint8Array;
  tcpPort: number;
  ignoreAddrs: Set<string>;
  claim(channels: Array<{ id: number; name: string }>): number[];
  stats: { searchDatagrams: number; searchReplies: number; badDatagrams: number };
  logger: Logger;
}

/** Handles one datagram; returns the replies to send as [bytes, address, port]. */
export function handleDatagram(
  host: SearchHost,
  msg: Uint8Array,
  from: { address: string; port: number },
): Array<[Uint8Array, string, number]> {
  host.stats.searchDatagrams++;
  if (host.ignoreAddrs.has(from.address)) return [];
  const out: Array<[Uint8Array, string, number]> = [];
  try {
    for (const m of splitDatagram(msg)) {
      if (m.command !== Cmd.SEARCH || (m.flags & 0x40) !== 0) continue;
      const s = decodeSearch(new Reader(m.payload, m.le));
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
      const addr = s.replyAddr === "::" || s.replyAddr === "0.0.0.0" ? from.address : s.replyAddr;
      const port = s.replyPort === 0 ? from.port : s.replyPort;
      if (!addr.includes(".")) continue; // IPv6 reply addresses: we serve IPv4 only
      out.push([w.bytes(), addr, port]);
      host.stats.searchReplies++;
    }
  } catch {
    host.stats.badDatagrams++;
  }
  return out;
}

/** Joins the pvxs loopback fan-out group so re-sent unicast searches reach this socket too. */
export function joinFanout(s: dgram.Socket, log: Logger): void {
  try {
    s.addMembership(FANOUT_GROUP, "127.0.0.1");
  } catch (err) {
    log.debug({ err }, "PVA: could not join the loopback search fan-out group");
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
  log: Logger,
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
