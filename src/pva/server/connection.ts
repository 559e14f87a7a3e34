/**
 * One TCP connection of the PVA server (docs/pva.md §Connection): handshake (server speaks first),
 * authentication (anonymous / ca, user and host kept), channels, dispatch of operations to ops.ts,
 * and the output path. Output is one buffer per tick; what the socket does not take goes to a
 * bounded backlog (reading pauses while it is large, the connection is dropped past the limit),
 * and monitors only send while the backlog is small, squashing in their queues meanwhile.
 */
import type { Socket } from "bun";
import type { Logger } from "pino";
import type { AccessPolicy, ClientIdentity } from "../../pv/access.ts";
import type { Pv } from "../../pv/pv.ts";
import { Cmd, Ctrl, Framer, type Message } from "../codec/header.ts";
import {
  beginMessage,
  controlMessage,
  decodeClientValidation,
  decodeCreateChannel,
  decodeSearch,
  encodeCreateChannelReply,
  encodeDestroyChannel,
  encodeSearchResponse,
  encodeServerValidation,
  encodeStatusOnly,
  endMessage,
} from "../codec/messages.ts";
import { encodeType, TypeCache, type TypeDesc, TypeSendCache } from "../codec/types.ts";
import type { StructValue } from "../codec/values.ts";
import { errorStatus, OK, PvaDecodeError, Reader, StatusType, Writer } from "../codec/wire.ts";
import type { PvaServerConfig } from "./config.ts";
import type { MonitorOp } from "./monitor.ts";
import { handleOp, type Op, opClosed } from "./ops.ts";
import type { RpcHandler, RpcRegistry } from "./rpc.ts";

export interface PvaCounters {
  messages: number;
  badMessages: number;
  updatesSent: number;
  updatesSquashed: number;
  bytesSent: number;
  connectionsDropped: number;
  refusals: number;
}

/** Counters at zero (the server's, and the warm-up's own, which nobody reads in `stats()`). */
export function newPvaCounters(): PvaCounters {
  return {
    messages: 0,
    badMessages: 0,
    updatesSent: 0,
    updatesSquashed: 0,
    bytesSent: 0,
    connectionsDropped: 0,
    refusals: 0,
  };
}

/** What a connection needs of its server. */
export interface ConnHost {
  readonly config: PvaServerConfig;
  readonly rpc: RpcRegistry;
  readonly guid: Uint8Array;
  readonly counters: PvaCounters;
  readonly tcpPort: number;
  /** Access security and the audit trail (src/pv/access.ts); null = each PV's own rights. */
  readonly access: AccessPolicy | null;
  lookupPv(name: string): Pv | undefined;
  /** The RPC handler of channel `name`: the registry's, or the built-in `server` PV's. */
  rpcHandler(name: string): RpcHandler | undefined;
  /**
   * A connection's buffered bytes changed by `delta`; false when its peer is now over
   * maxBufferedBytesPerPeer (the connection then closes itself).
   */
  peerBuffered(c: Connection, delta: number): boolean;
  /** Search ids this server claims among `channels`. */
  claim(channels: Array<{ id: number; name: string }>): number[];
  connectionClosed(c: Connection): void;
}

export interface ConnSocketData {
  conn: Connection | null;
}

export interface Channel {
  sid: number;
  cid: number;
  name: string;
  /** Null for an RPC-only channel (a name served by the RPC registry alone). */
  pv: Pv | null;
  ops: Map<number, Op>;
  offRemove: () => void;
}

/** Backlog above which reading pauses and monitors hold their updates. */
const HIGH_WATER = 512 * 1024;
const OUT_RETAIN = 1 << 20;

export class Connection {
  readonly peer: string;
  readonly ip: string;
  readonly log: Logger;
  readonly typeCache = new TypeCache();
  /** Send side of the introspection cache (null when config.typeCache is off). */
  private readonly sendTypes: TypeSendCache | null;
  readonly channels = new Map<number, Channel>();
  readonly ops = new Map<number, Op>();
  /** Monitors with queued updates waiting for window or socket space. */
  readonly readyMonitors = new Set<MonitorOp>();
  user = "";
  host = "";
  method = "";
  validated = false;
  closed = false;
  pendingWrites = 0;
  /** The client as access rules see it (the `ca` authentication's user and host, or the address). */
  private who: ClientIdentity | null = null;
  private nextSid = 0x07050301;
  private readonly framer: Framer;
  /** Output being built this tick (little-endian, server flag). */
  out = new Writer(4096, true);
  private backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private readPaused = false;
  private flushQueued = false;
  private readonly refusedOnce = new Set<string>();
  /** Buffered bytes last reported to the server's per-peer total. */
  private accounted = 0;
  /** Set when the peer's cap closed this connection: nothing more is queued or reported. */
  private overCap = false;

  constructor(
    readonly srv: ConnHost,
    readonly socket: Socket<ConnSocketData>,
    logger: Logger,
  ) {
    this.ip = socket.remoteAddress;
    this.peer = `${this.ip}:${(socket as unknown as { remotePort?: number }).remotePort ?? 0}`;
    this.log = logger.child({ peer: this.peer });
    this.framer = new Framer(srv.config.maxMessageBytes);
    this.sendTypes = srv.config.typeCache ? new TypeSendCache() : null;
  }

  /**
   * Writes one of the server's shared type descriptions (a normative type or a field of one) to the
   * output. Through the introspection cache a client decodes each type once per connection instead
   * of once per operation: in a 10,000-channel `pvxget` the type decoding was about a third of the
   * client's CPU (docs/benchmarks.md).
   */
  writeType(t: TypeDesc): void {
    if (this.sendTypes) this.sendTypes.write(this.out, t);
    else encodeType(this.out, t);
  }

  /**
   * Closes the connection after connTimeout seconds without received data. uSockets counts
   * timeouts in 4 s ticks and fires on the tick its count reaches, anywhere within the last one, so
   * one tick more makes the silence at least connTimeout before a close; one second more covers
   * onData re-arming at most once a second (at most connTimeout + 5 s).
   */
  armIdleTimeout(): void {
    this.armedAt = performance.now();
    this.socket.timeout(this.srv.config.connTimeout + 5);
  }

  /** When armIdleTimeout last ran (performance.now() ms). */
  private armedAt = 0;

  /** The server speaks first: byte order, then the validation request. */
  start(): void {
    this.armIdleTimeout();
    controlMessage(this.out, Ctrl.SET_BYTE_ORDER, 0, true);
    encodeServerValidation(this.out, {
      bufferSize: 0x10000,
      registryMax: 0x7fff,
      methods: ["anonymous", "ca"],
    });
    this.flush();
  }

  onData(data: Uint8Array): void {
    if (this.closed) return;
    // Bun's socket timeout is not an idle timeout: received data does not reset it, so without
    // re-arming every connection was dropped connTimeout after it opened, even a monitor whose
    // client echoes every 15 s. Re-arming is a native call that showed in the GET round trip, so
    // it is done at most once a second (armIdleTimeout adds that second to the timeout).
    if (performance.now() - this.armedAt >= 1000) this.armIdleTimeout();
    let msgs: Message[];
    try {
      msgs = this.framer.push(data);
    } catch (e) {
      this.protocolError(e);
      return;
    }
    if (!this.account()) return;
    for (const m of msgs) {
      if (this.closed) return;
      this.srv.counters.messages++;
      try {
        this.dispatch(m);
      } catch (e) {
        if (!(e instanceof PvaDecodeError)) {
          this.protocolError(e);
          return;
        }
        // The framing is intact, so only this message is lost: count it and go on. (Handlers
        // decode a request completely before writing any reply, so no reply is half-written.)
        this.srv.counters.badMessages++;
        this.refuseOnce("malformed", `malformed message (command ${m.command}): ${e.message}`);
      }
    }
    this.scheduleFlush();
  }

  private protocolError(e: unknown): void {
    this.srv.counters.badMessages++;
    if (!(e instanceof PvaDecodeError)) this.log.error({ err: e }, "PVA internal error");
    this.drop(`protocol error: ${(e as Error).message}`);
  }

  private dispatch(m: Message): void {
    if (m.control) return; // SET_BYTE_ORDER and markers: nothing to do (each message has its order)
    const r = new Reader(m.payload, m.le);
    switch (m.command) {
      case Cmd.CONNECTION_VALIDATION:
        this.onValidation(r);
        return;
      case Cmd.ECHO: {
        const p = beginMessage(this.out, Cmd.ECHO, true);
        this.out.raw(m.payload);
        endMessage(this.out, p);
        return;
      }
      case Cmd.SEARCH:
        this.onSearch(r);
        return;
      case Cmd.AUTHNZ:
        return;
    }
    if (!this.validated) {
      this.refuseOnce("unvalidated", "request before connection validation ignored");
      return;
    }
    switch (m.command) {
      case Cmd.CREATE_CHANNEL:
        this.onCreateChannel(r);
        return;
      case Cmd.DESTROY_CHANNEL:
        this.onDestroyChannel(r);
        return;
      default:
        handleOp(this, m.command, r);
    }
  }

  private onValidation(r: Reader): void {
    const v = decodeClientValidation(r, this.typeCache);
    if (v.method !== "ca" && v.method !== "anonymous") {
      encodeStatusOnly(
        this.out,
        Cmd.CONNECTION_VALIDATED,
        errorStatus("Client selects unadvertised auth"),
      );
      return;
    }
    this.method = v.method;
    if (v.method === "ca" && v.auth && typeof v.auth === "object") {
      const a = v.auth as StructValue;
      this.user = typeof a.user === "string" ? a.user : "";
      this.host = typeof a.host === "string" ? a.host : "";
    }
    this.validated = true;
    encodeStatusOnly(this.out, Cmd.CONNECTION_VALIDATED, OK);
  }

  /** The client's identity for access rules (fixed once asked: names come with validation). */
  identity(): ClientIdentity {
    this.who ??= this.srv.access?.identify(this.user, this.host, this.ip) ?? {
      user: this.user,
      host: this.host,
    };
    return this.who;
  }

  /** RIGHTS bits (read 1, write 2) on `pv`: the policy's, never more than the PV allows. */
  rights(pv: Pv): number {
    const own = pv.writable ? 3 : 1;
    const access = this.srv.access;
    return access === null ? own : access.rights(pv, this.identity()) & own;
  }

  private onSearch(r: Reader): void {
    const s = decodeSearch(r);
    const ids =
      s.protocols.includes("tcp") || s.protocols.length === 0 ? this.srv.claim(s.channels) : [];
    if (ids.length === 0 && (s.flags & 0x01) === 0) return;
    encodeSearchResponse(this.out, {
      guid: this.srv.guid,
      seq: s.seq,
      addr: "0.0.0.0",
      port: this.srv.tcpPort,
      protocol: "tcp",
      found: ids.length > 0,
      ids,
    });
  }

  private onCreateChannel(r: Reader): void {
    const list = decodeCreateChannel(r, 65535);
    for (const { cid, name } of list) {
      if (this.channels.size >= this.srv.config.maxChannelsPerConnection) {
        this.refuseOnce("channels", `channel limit ${this.srv.config.maxChannelsPerConnection}`);
        encodeCreateChannelReply(this.out, cid, 0xffffffff, errorStatus("Too many channels"));
        continue;
      }
      const pv = this.srv.lookupPv(name) ?? null;
      if (!pv && !this.srv.rpcHandler(name)) {
        const s = errorStatus("Refused to create Channel", StatusType.FATAL);
        encodeCreateChannelReply(this.out, cid, 0xffffffff, s);
        continue;
      }
      const sid = this.allocSid();
      const ch: Channel = { sid, cid, name, pv, ops: new Map(), offRemove: () => {} };
      if (pv) ch.offRemove = pv.onRemove(() => this.serverDestroy(ch));
      this.channels.set(sid, ch);
      encodeCreateChannelReply(this.out, cid, sid, OK);
    }
  }

  private allocSid(): number {
    let sid = this.nextSid;
    while (this.channels.has(sid)) sid = (sid + 1) >>> 0;
    this.nextSid = (sid + 1) >>> 0;
    return sid;
  }

  private onDestroyChannel(r: Reader): void {
    const sid = r.u32();
    const cid = r.u32();
    const ch = this.channels.get(sid);
    if (!ch || ch.cid !== cid) return;
    this.releaseChannel(ch);
    encodeDestroyChannel(this.out, sid, cid, true);
  }

  /** The PV went away (or its RPC handler): tell the client, which will search again. */
  serverDestroy(ch: Channel): void {
    if (this.closed || this.channels.get(ch.sid) !== ch) return;
    this.releaseChannel(ch);
    encodeDestroyChannel(this.out, ch.sid, ch.cid, true);
    this.scheduleFlush();
  }

  private releaseChannel(ch: Channel): void {
    this.channels.delete(ch.sid);
    ch.offRemove();
    for (const op of ch.ops.values()) {
      this.ops.delete(op.ioid);
      opClosed(this, op);
    }
    ch.ops.clear();
  }

  /** Logs a refusal once per connection and kind (a flood of them must not flood the log). */
  refuseOnce(kind: string, msg: string): void {
    this.srv.counters.refusals++;
    if (this.refusedOnce.has(kind)) return;
    this.refusedOnce.add(kind);
    this.log.warn({ user: this.user, host: this.host }, `PVA refused: ${msg}`);
  }

  /**
   * Reports this connection's buffered bytes (unsent output + partly received input) to the
   * per-peer total; over the peer's cap the connection is dropped and false returned.
   */
  private account(): boolean {
    if (this.overCap && !this.closed) return false;
    const now = this.closed ? 0 : this.backlogBytes + this.framer.buffered;
    const delta = now - this.accounted;
    if (delta === 0) return !this.closed;
    this.accounted = now;
    if (this.srv.peerBuffered(this, delta) || this.closed) return !this.closed;
    // Over the cap: what is queued is discarded (sending it is what the cap forbids).
    this.overCap = true;
    this.backlog = [];
    this.backlogBytes = 0;
    this.out.pos = 0;
    this.drop(`peer over ${this.srv.config.maxBufferedBytesPerPeer} buffered bytes`);
    return false;
  }

  get queuedBytes(): number {
    return this.backlogBytes + this.out.pos;
  }

  /** Whether monitors should hold updates for now (socket backlog). */
  get congested(): boolean {
    return this.backlogBytes > HIGH_WATER;
  }

  scheduleFlush(): void {
    if (this.flushQueued || this.closed) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.pumpMonitors();
      this.flush();
    });
  }

  /** Sends queued monitor updates while the socket keeps up. */
  pumpMonitors(): void {
    if (this.readyMonitors.size === 0) return;
    for (const m of [...this.readyMonitors]) {
      if (this.congested || this.out.pos > HIGH_WATER) return;
      m.pump();
    }
  }

  flush(): void {
    if (this.closed || this.out.pos === 0) return;
    const len = this.out.pos;
    const buf = this.out.buf;
    if (this.backlog.length > 0) this.pushBacklog(buf.slice(0, len));
    else {
      const n = this.socket.write(buf, 0, len);
      if (n >= 0) {
        this.srv.counters.bytesSent += n;
        if (n < len) this.pushBacklog(buf.slice(n, len));
      }
    }
    this.out.pos = 0;
    if (this.out.buf.length > OUT_RETAIN) this.out = new Writer(4096, true);
  }

  private pushBacklog(b: Uint8Array): void {
    this.backlog.push(b);
    this.backlogBytes += b.length;
    if (this.backlogBytes > this.srv.config.maxQueuedBytesPerConnection) {
      this.backlog = [];
      this.backlogBytes = 0;
      this.drop(
        `client not reading: over ${this.srv.config.maxQueuedBytesPerConnection} bytes unsent`,
      );
      return;
    }
    if (!this.account()) return;
    if (!this.readPaused && this.backlogBytes > HIGH_WATER) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  onDrain(): void {
    if (this.closed) return;
    while (this.backlog.length > 0) {
      const b = this.backlog[0] as Uint8Array;
      const n = this.socket.write(b);
      if (n < 0) return;
      this.srv.counters.bytesSent += n;
      this.backlogBytes -= n;
      if (n < b.length) {
        this.backlog[0] = b.subarray(n);
        this.account();
        return;
      }
      this.backlog.shift();
    }
    this.account();
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.pumpMonitors();
    this.flush();
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of [...this.channels.values()]) this.releaseChannel(ch);
    this.readyMonitors.clear();
    this.backlog = [];
    this.backlogBytes = 0;
    this.account();
    this.srv.connectionClosed(this);
  }

  /** Closes after sending what is queued (best effort). */
  drop(reason: string): void {
    if (this.closed) return;
    this.log.warn({ reason, user: this.user, host: this.host }, "PVA connection dropped");
    this.srv.counters.connectionsDropped++;
    this.shutdown();
  }

  shutdown(): void {
    if (this.closed) return;
    this.flush();
    this.socket.end();
    this.onClose();
  }
}
