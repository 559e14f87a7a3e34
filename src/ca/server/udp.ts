/**
 * UDP side of the CA server: name search responder (fact sheet §8.1) and beacons (§8.2).
 * Search sockets use node:dgram because Bun.udpSocket cannot set SO_REUSEADDR, and several CA
 * servers on one host must share UDP 5064 (broadcast searches reach all of them).
 */
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import os from "node:os";
import type { Logger } from "pino";
import {
  CA_MINOR_VERSION,
  CMD,
  HEADER_SIZE,
  INADDR_ANY_REPLY,
  MAX_UDP_SEND,
} from "../codec/constants.ts";
import { encodeBeacon, encodeUdpVersion } from "../codec/messages.ts";
import { decodeName } from "./fanout.ts";
import {
  BAD_DATAGRAMS,
  SEARCH_COUNTER_SLOTS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
} from "./search-protocol.ts";

// A search reply: 16-byte header + 8-byte payload carrying our minor version.
const SEARCH_REPLY_SIZE = 24;

/** The served names, as the search responder sees them (a Set, or the PV registry). */
export interface NameSet {
  has(name: string): boolean;
}

/** Answers UDP name searches for a set of PV names. */
export class SearchResponder {
  private readonly ignore: Set<string>;
  private readonly warned = new Set<string>();

  constructor(
    private readonly names: NameSet,
    private readonly tcpPort: () => number,
    ignoreAddrs: readonly string[],
    private readonly maxNameLength: number,
    private readonly warn: (msg: string) => void,
    /** Counters by the slots of search-protocol.ts (shared with the main thread in the server). */
    readonly counters: Float64Array<ArrayBufferLike> = new Float64Array(SEARCH_COUNTER_SLOTS),
  ) {
    this.ignore = new Set(ignoreAddrs);
  }

  /**
   * Handles one datagram; returns the reply datagrams to send back to its source (each ≤ 1024
   * bytes: VERSION prefix + 24-byte replies), or none. Parses in place (this is the connect-storm
   * hot path: one call per client datagram of ~30 names). Never throws on malformed input.
   */
  handle(msg: Uint8Array, fromIp: string): Uint8Array[] {
    if (this.ignore.has(fromIp)) return [];
    const c = this.counters;
    c[SEARCH_DATAGRAMS] = (c[SEARCH_DATAGRAMS] ?? 0) + 1;
    const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const len = msg.length;
    const replies: Uint8Array[] = [];
    let out: Uint8Array | null = null;
    let outView: DataView | null = null;
    let outLen = 0;
    const tcpPort = this.tcpPort();
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
      const command = view.getUint16(off);
      const size = view.getUint16(off + 2);
      if ((size & 7) !== 0 || off + HEADER_SIZE + size > len) {
        error = `bad payload size ${size} at byte ${off}`;
        break;
      }
      const count = view.getUint16(off + 6);
      const p1 = view.getUint32(off + 8);
      const p2 = view.getUint32(off + 12);
      const body = off + HEADER_SIZE;
      off = body + size;
      if (command === CMD.VERSION) {
        minor = count;
        seq = p1;
        continue;
      }
      // rsrv's UDP dispatch only knows VERSION and SEARCH; anything else ends the datagram.
      if (command !== CMD.SEARCH) break;
      if (minor < 4 || count < 4) continue;
      let end = msg.indexOf(0, body);
      if (end < 0 || end > body + size) end = body + size;
      const nameLen = end - body;
      if (nameLen === 0 || nameLen > this.maxNameLength) continue;
      const name = decodeName(msg, body, end);
      if (!this.names.has(name)) continue;
      if (out !== null && outLen + SEARCH_REPLY_SIZE > MAX_UDP_SEND) {
        replies.push(out.subarray(0, outLen));
        out = null;
      }
      if (out === null || outView === null) {
        out = new Uint8Array(MAX_UDP_SEND);
        outView = new DataView(out.buffer);
        outLen = 0;
        // Clients < 4.11 get no VERSION prefix (rsrv strips it).
        if (minor >= 11) {
          out.set(encodeUdpVersion(seq, minor), 0);
          outLen = HEADER_SIZE;
        }
      }
      // SEARCH reply written in place (fact sheet §3.2): dt = TCP port, p1 = 0xFFFFFFFF ("use the
      // sender's address"), p2 = search ID, 8-byte payload with our minor version (buffer is zeroed).
      outView.setUint16(outLen, CMD.SEARCH);
      outView.setUint16(outLen + 2, 8);
      outView.setUint16(outLen + 4, tcpPort);
      outView.setUint32(outLen + 8, INADDR_ANY_REPLY);
      outView.setUint32(outLen + 12, p2);
      outView.setUint16(outLen + 16, CA_MINOR_VERSION);
      outLen += SEARCH_REPLY_SIZE;
      c[SEARCH_REPLIES] = (c[SEARCH_REPLIES] ?? 0) + 1;
    }
    if (error !== null) {
      c[BAD_DATAGRAMS] = (c[BAD_DATAGRAMS] ?? 0) + 1;
      this.warnOnce(fromIp, `malformed CA datagram from ${fromIp}: ${error}`);
    }
    if (out !== null) replies.push(out.subarray(0, outLen));
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

/** Binds a UDP socket with SO_REUSEADDR so other CA servers on this host can share the port. */
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
  /** Flat [data, port, address, ...] triples, the shape `sendMany` takes. */
  private packets: (Uint8Array | number | string)[] = [];
  /** The buffer the last queued packet is being merged into (null: it is the caller's own). */
  private merge: Uint8Array | null = null;
  private mergeLen = 0;

  constructor(
    private readonly socket: dgram.Socket,
    private readonly native: NativeUdpSend | null,
    private readonly onDropped: (err: Error, address: string) => void,
  ) {}

  /** True if replies are waiting for `flush()`. */
  get pending(): boolean {
    return this.packets.length > 0;
  }

  /** Queues one reply datagram (the caller must not reuse `data`). */
  queue(data: Uint8Array, port: number, address: string): void {
    const p = this.packets;
    const n = p.length;
    if (n > 0 && p[n - 2] === port && p[n - 1] === address) {
      const cap = replyCap(address);
      const prev = p[n - 3] as Uint8Array;
      if (prev.length + data.length <= cap) {
        let m = this.merge;
        if (m === null) {
          m = new Uint8Array(cap);
          m.set(prev, 0);
          this.merge = m;
          this.mergeLen = prev.length;
        }
        m.set(data, this.mergeLen);
        this.mergeLen += data.length;
        p[n - 3] = m.subarray(0, this.mergeLen);
        return;
      }
    }
    this.merge = null;
    p.push(data, port, address);
  }

  /** Sends every queued reply; what the native path does not take goes through node:dgram. */
  flush(): void {
    const p = this.packets;
    if (p.length === 0) return;
    this.packets = [];
    this.merge = null;
    const total = p.length / 3;
    const sent = this.native === null ? 0 : Math.min(this.native.sendMany(p), total);
    for (let i = sent; i < total; i++)
      this.sendOne(p[i * 3] as Uint8Array, p[i * 3 + 1] as number, p[i * 3 + 2] as string);
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
export function broadcastOf(ip: string, netmask: string): string | null {
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
 * beacon period, which makes clients waiting on a restarted server re-search quickly (§8.3).
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
