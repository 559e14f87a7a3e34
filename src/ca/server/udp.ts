/**
 * UDP side of the CA server: name search responder and beacons
 * (docs/ca-protocol-facts.md, Search and beacons).
 * Search sockets use node:dgram because Bun.udpSocket cannot set SO_REUSEADDR, and several CA
 * servers on one host must share UDP 5064 (broadcast searches reach all of them).
 */
import type dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import os from "node:os";
import type { Logger } from "pino";
import { bindUdp } from "../../common/udp.ts";
import { CMD, HEADER_SIZE, MAX_UDP_SEND } from "../codec/constants.ts";
import { get16, get32 } from "../codec/header.ts";
import {
  encodeBeacon,
  SEARCH_REPLY_SIZE,
  writeSearchReply,
  writeUdpVersion,
} from "../codec/messages.ts";
import {
  BAD_DATAGRAMS,
  SEARCH_COUNTER_SLOTS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
} from "./search-protocol.ts";

/** Answers UDP name searches for a set of PV names. */
export class SearchResponder {
  private readonly ignore: Set<string>;
  private readonly warned = new Set<string>();

  constructor(
    /** The served names, matched where they lie in the datagram (NameSet, src/common/name-set.ts). */
    private readonly names: { has(bytes: Uint8Array, start: number, end: number): boolean },
    ignoreAddrs: readonly string[],
    private readonly maxNameLength: number,
    private readonly warn: (msg: string) => void,
    /** Counters by the slots of search-protocol.ts (shared with the main thread in the server). */
    readonly counters: Float64Array<ArrayBufferLike> = new Float64Array(SEARCH_COUNTER_SLOTS),
  ) {
    this.ignore = new Set(ignoreAddrs);
  }

  /** Reply piece being written (reused: the sender copies each piece when it is queued). */
  private readonly out = new Uint8Array(MAX_UDP_SEND);
  private readonly outView = new DataView(this.out.buffer);

  /**
   * Handles one datagram from fromIp:fromPort: queues its replies on `sender` (pieces of ≤ 1024
   * bytes, each a VERSION prefix + 24-byte replies) and returns how many it queued. Parses and
   * matches in place, allocation-free (the connect-storm hot path: one call per client datagram
   * of ~30 names). Never throws on malformed input.
   */
  handle(
    msg: Uint8Array,
    fromIp: string,
    fromPort: number,
    sender: SearchReplySender,
    // The TCP port the replies advertise. A number, not a getter the responder calls: the boot
    // warm-up's getter was another function than the session's, the compiled `handle` had inlined
    // it, and JSC threw that code away at the first real search (then took ~120 ms to compile
    // `handle` again during the warm storms: docs/benchmarks.md, "CA names as bytes").
    tcpPort: number,
  ): number {
    if (this.ignore.has(fromIp)) return 0;
    const c = this.counters;
    c[SEARCH_DATAGRAMS] = (c[SEARCH_DATAGRAMS] ?? 0) + 1;
    const len = msg.length;
    const out = this.out;
    const ov = this.outView;
    let outLen = -1; // -1: no piece started
    let replies = 0;
    // Per datagram, like rsrv: a SEARCH counts only after a VERSION with minor ≥ 4 in the same one.
    let minor = 0;
    let seq = 0;
    let off = 0;
    let error: string | null = null;
    while (off < len) {
      if (len - off < HEADER_SIZE) {
        error = `truncated header at byte ${off}`;
        break;
      }
      const command = get16(msg, off);
      const size = get16(msg, off + 2);
      if ((size & 7) !== 0 || off + HEADER_SIZE + size > len) {
        error = `bad payload size ${size} at byte ${off}`;
        break;
      }
      const count = get16(msg, off + 6);
      const body = off + HEADER_SIZE;
      const next = body + size;
      if (command === CMD.VERSION) {
        minor = count;
        seq = get32(msg, off + 8);
        off = next;
        continue;
      }
      // rsrv's UDP dispatch only knows VERSION and SEARCH; anything else ends the datagram.
      if (command !== CMD.SEARCH) break;
      const id = get32(msg, off + 12);
      off = next;
      if (minor < 4 || count < 4) continue;
      let end = msg.indexOf(0, body);
      if (end < 0 || end > next) end = next;
      const nameLen = end - body;
      if (nameLen === 0 || nameLen > this.maxNameLength) continue;
      if (!this.names.has(msg, body, end)) continue;
      if (outLen + SEARCH_REPLY_SIZE > MAX_UDP_SEND) {
        sender.queue(out, fromPort, fromIp, outLen);
        outLen = -1;
      }
      if (outLen < 0) {
        outLen = 0;
        // Clients < 4.11 get no VERSION prefix (rsrv strips it).
        if (minor >= 11) {
          writeUdpVersion(ov, 0, seq, minor);
          outLen = HEADER_SIZE;
        }
      }
      writeSearchReply(ov, outLen, tcpPort, id);
      outLen += SEARCH_REPLY_SIZE;
      replies++;
    }
    c[SEARCH_REPLIES] = (c[SEARCH_REPLIES] ?? 0) + replies;
    if (error !== null) {
      c[BAD_DATAGRAMS] = (c[BAD_DATAGRAMS] ?? 0) + 1;
      this.warnOnce(fromIp, `malformed CA datagram from ${fromIp}: ${error}`);
    }
    if (outLen > 0) sender.queue(out, fromPort, fromIp, outLen);
    return replies;
  }

  private warnOnce(ip: string, msg: string): void {
    if (this.warned.has(ip)) return;
    // Bounded: after many distinct sources we stop remembering (and logging) new ones.
    if (this.warned.size < 1024) this.warned.add(ip);
    else return;
    this.warn(msg);
  }
}

// Shared with the other protocol server: one home (src/common/udp.ts).
export { bindUdp };

/** The send function of Bun's native UDP socket (true: handed to the kernel). */
export interface NativeUdpSend {
  send(data: Uint8Array, port: number, address: string): boolean;
  /** Sends [data, port, address, ...] triples in one call (sendmmsg); returns how many went. */
  sendMany(packets: (Uint8Array | number | string)[]): number;
}

/**
 * The native socket under a node:dgram socket, or null if this runtime has none. Bun implements
 * node:dgram on its native UDPSocket (the only way to get SO_REUSEADDR); sending through it directly
 * skips dgram's per-call argument normalisation, the address lookup and the Buffer re-wrapping,
 * which is most of the JS cost of a search reply (connect-storm hot path). Falls back to
 * `socket.send` when the internal shape is not there (other Bun versions).
 */
export function nativeUdpSend(s: dgram.Socket): NativeUdpSend | null {
  // Bun keeps the dgram state (handle → native socket) under a private symbol; `_handle` would
  // reach it too but prints a deprecation warning.
  const sym = Object.getOwnPropertySymbols(s).find((k) => k.description === "state symbol");
  const state = sym === undefined ? undefined : (s as unknown as Record<symbol, unknown>)[sym];
  const handle = (state as { handle?: { socket?: unknown } } | undefined)?.handle;
  const native = handle?.socket as { send?: unknown; sendMany?: unknown } | undefined;
  if (native === undefined || native === null || typeof native.send !== "function") return null;
  const fn = native.send as (d: Uint8Array, port: number, address: string) => boolean;
  const many =
    typeof native.sendMany === "function"
      ? (native.sendMany as (p: (Uint8Array | number | string)[]) => number)
      : null;
  return {
    send: (d, port, address) => {
      try {
        return fn.call(native, d, port, address) !== false;
      } catch {
        return false;
      }
    },
    sendMany: (packets) => {
      if (many === null) return 0;
      try {
        const n = many.call(native, packets);
        return typeof n === "number" && n > 0 ? n : 0;
      } catch {
        return 0;
      }
    },
  };
}

/**
 * Largest merged reply datagram to a loopback peer. Loopback has a 64 KiB MTU (nothing is
 * fragmented) and libca, CAJ and caproto all receive datagrams of up to 0xFFFF + 16 bytes.
 */
export const MAX_LOOPBACK_REPLY = 61_440;

/** Largest reply datagram for a peer: rsrv's 1024-byte bound, except on loopback. */
export function replyCap(address: string): number {
  return address.startsWith("127.") ? MAX_LOOPBACK_REPLY : MAX_UDP_SEND;
}

/**
 * Search replies of one UDP socket, queued while a burst of search datagrams is handled and sent
 * together by `flush()` (called once the datagrams the event loop read in this iteration are all
 * handled). One sendmmsg per burst instead of one sendto per reply: in the connect storm each
 * sendto woke the client's receive thread separately, and that cost more server time than
 * answering the search itself (measured: docs/benchmarks.md).
 *
 * Consecutive replies to the same peer are also merged into one datagram up to `replyCap`: each
 * reply keeps its own VERSION prefix (the client's sequence number), so the peer parses the
 * merged datagram exactly as the separate ones. On loopback a burst of 64 search datagrams is
 * then answered by one datagram instead of 64 — one kernel pass and one wake-up of the client.
 */
export class SearchReplySender {
  /**
   * Queued datagrams, back to back (reused from one flush to the next: sendmmsg copies what it
   * sends, and what it does not take is copied before it goes to node:dgram).
   */
  private arena = new Uint8Array(64 * 1024);
  private arenaLen = 0;
  /** Per queued datagram: its end in the arena (it starts where the previous one ends), peer. */
  private ends: number[] = [];
  private ports: number[] = [];
  private addrs: string[] = [];
  private n = 0;

  constructor(
    private readonly socket: dgram.Socket,
    private readonly native: NativeUdpSend | null,
    private readonly onDropped: (err: Error, address: string) => void,
  ) {}

  /** True if replies are waiting for `flush()`. */
  get pending(): boolean {
    return this.n > 0;
  }

  /** Queues one reply datagram: the first `len` bytes of `data`, copied (data may be reused). */
  queue(data: Uint8Array, port: number, address: string, len = data.length): void {
    const n = this.n;
    const merge =
      n > 0 &&
      this.ports[n - 1] === port &&
      this.addrs[n - 1] === address &&
      this.arenaLen - (n === 1 ? 0 : (this.ends[n - 2] as number)) + len <= replyCap(address);
    if (this.arenaLen + len > this.arena.length) {
      const bigger = new Uint8Array(Math.max(this.arena.length * 2, this.arenaLen + len));
      bigger.set(this.arena.subarray(0, this.arenaLen));
      this.arena = bigger;
    }
    this.arena.set(len === data.length ? data : data.subarray(0, len), this.arenaLen);
    this.arenaLen += len;
    if (merge) {
      this.ends[n - 1] = this.arenaLen;
      return;
    }
    this.ends[n] = this.arenaLen;
    this.ports[n] = port;
    this.addrs[n] = address;
    this.n = n + 1;
  }

  /** Sends every queued reply; what the native path does not take goes through node:dgram. */
  flush(): void {
    const total = this.n;
    if (total === 0) return;
    const packets: (Uint8Array | number | string)[] = new Array(total * 3);
    let start = 0;
    for (let i = 0; i < total; i++) {
      const end = this.ends[i] as number;
      packets[i * 3] = this.arena.subarray(start, end);
      packets[i * 3 + 1] = this.ports[i] as number;
      packets[i * 3 + 2] = this.addrs[i] as string;
      start = end;
    }
    this.n = 0;
    this.arenaLen = 0;
    const sent = this.native === null ? 0 : Math.min(this.native.sendMany(packets), total);
    for (let i = sent; i < total; i++)
      // A copy: the arena is reused by the next burst while dgram may still hold this.
      this.sendOne(
        (packets[i * 3] as Uint8Array).slice(),
        packets[i * 3 + 1] as number,
        packets[i * 3 + 2] as string,
      );
  }

  private sendOne(data: Uint8Array, port: number, address: string): void {
    // If the kernel refuses (buffer full), dgram's send queues the reply instead of losing it (a
    // lost reply makes libca back off to one search datagram per round).
    if (this.native?.send(data, port, address)) return;
    try {
      this.socket.send(data, port, address, (err) => {
        if (err) this.onDropped(err, address);
      });
    } catch (e) {
      // Socket closed meanwhile (server stopping).
      this.onDropped(e as Error, address);
    }
  }
}

/** IPv4 broadcast address of every broadcast-capable interface (optionally only the given IPs'). */
export function broadcastAddresses(onlyIps: readonly string[] = []): string[] {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family !== "IPv4" || a.internal) continue;
      if (onlyIps.length > 0 && !onlyIps.includes(a.address)) continue;
      const b = broadcastOf(a.address, a.netmask);
      if (b !== null) out.add(b);
    }
  }
  return [...out];
}

/** Broadcast address of ip/netmask, or null for a /32 (no broadcast). */
function broadcastOf(ip: string, netmask: string): string | null {
  const toInt = (s: string) => s.split(".").reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
  const mask = toInt(netmask);
  if (mask === 0xffffffff) return null;
  const b = (toInt(ip) | ~mask) >>> 0;
  return [b >>> 24, (b >>> 16) & 255, (b >>> 8) & 255, b & 255].join(".");
}

/** A resolved beacon destination. */
export interface BeaconDest {
  host: string;
  port: number;
}

/** Resolves "host[:port]" entries (hostnames via DNS, IPv4 only). */
export async function resolveBeaconDests(
  entries: readonly string[],
  defaultPort: number,
): Promise<BeaconDest[]> {
  const out: BeaconDest[] = [];
  for (const e of entries) {
    const [host = "", portText] = e.split(":");
    const port = portText === undefined ? defaultPort : Number(portText);
    const { address } = await lookup(host, { family: 4 });
    out.push({ host: address, port });
  }
  return out;
}

// First beacon interval (rsrv starts fast so clients notice a (re)started server at once).
const FIRST_BEACON_INTERVAL = 0.02;

/** Beacon interval (seconds) after `interval`: doubled, capped at the beacon period. */
export function nextBeaconInterval(interval: number, period: number): number {
  return Math.min(interval * 2, period);
}

/**
 * Sends beacons (RSRV_IS_UP) to each destination: intervals start at 20 ms and double up to the
 * beacon period, which makes clients waiting on a restarted server re-search quickly (ca-protocol-facts.md, Search and beacons).
 */
export class Beacons {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private id = 0;
  /** Seconds until the beacon after the next one is due (the schedule's current step). */
  interval = FIRST_BEACON_INTERVAL;
  sent = 0;

  constructor(
    private readonly socket: dgram.Socket,
    private readonly dests: readonly BeaconDest[],
    private readonly tcpPort: number,
    private readonly period: number,
    private readonly log: Logger,
  ) {}

  /** Starts the beacon schedule (first beacon at once). */
  start(): void {
    if (this.dests.length === 0) return;
    this.tick();
  }

  /** Stops sending. */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const msg = encodeBeacon(this.tcpPort, this.id);
    this.id = (this.id + 1) >>> 0;
    for (const d of this.dests) {
      this.socket.send(msg, d.port, d.host, (err) => {
        if (err) this.log.debug({ err, dest: d }, "beacon send failed");
      });
    }
    this.sent++;
    const delay = this.interval;
    this.interval = nextBeaconInterval(this.interval, this.period);
    this.timer = setTimeout(() => this.tick(), delay * 1000);
    this.timer.unref?.();
  }
}
