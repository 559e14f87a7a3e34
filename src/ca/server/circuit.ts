/**
 * One TCP virtual circuit: parses client requests (via the codec's MessageReader), keeps the
 * circuit's channels and subscriptions, and owns its send path.
 *
 * Send path: replies and monitor updates are appended to one growable buffer and written with one
 * `socket.write` per tick (Bun sockets are unbuffered; what the kernel refuses goes to a backlog
 * written on `drain`). While a backlog exists or the client sent EVENTS_OFF, monitor updates are not
 * queued: the subscription is only marked pending and its *latest* value is encoded when the
 * circuit drains (rsrv's coalescing, fact sheet §7.2), so a slow client costs one flag per
 * subscription, never unbounded memory, and never delays other circuits. Replies to requests still
 * queue (bounded: reading pauses while the backlog is large, and a circuit whose backlog passes
 * maxQueuedBytesPerCircuit is dropped).
 */
import type { Socket } from "bun";
import type { Logger } from "pino";
import type { Pv } from "../../pv/pv.ts";
import type { PvSource } from "../../pv/source.ts";
import { DBE, type PvValue, PvWriteError, type WriteContext } from "../../pv/types.ts";
import { ACCESS, CMD, CMD_NAME, ECA } from "../codec/constants.ts";
import { decodePut } from "../codec/dbr-decode.ts";
import { encodePlainScalarInto, nativeDbrType } from "../codec/dbr-encode.ts";
import { dbrPayloadSize, isValidDbrType } from "../codec/dbr-layout.ts";
import { type CaHeader, headerSizeFor, writeHeader, writeStandardHeader } from "../codec/header.ts";
import {
  encodeClearChannelReply,
  encodeEcho,
  encodeError,
  encodeEventCancelAck,
  encodeNotFound,
  encodeReadReply,
  encodeReadSync,
  encodeSearchReply,
  encodeServerDisconn,
  encodeVersion,
  encodeWriteNotifyReply,
  writeEventUpdateHeader,
} from "../codec/messages.ts";
import { MessageReader, READ } from "../codec/stream.ts";
import type { CaServerConfig } from "./config.ts";
import {
  type Encoded,
  type FanoutChannel,
  type FanoutSubscription,
  type PvEntry,
  type SubscriptionSink,
  zeroPayload,
} from "./fanout.ts";

/** Counters shared by all circuits of a server (see CaServer.stats). */
export interface CaCounters {
  /** TCP messages parsed (well-framed requests, whatever their fate). */
  requests: number;
  updatesSent: number;
  /** Monitor updates replaced by a newer value before they could be sent (slow client/EVENTS_OFF). */
  updatesCoalesced: number;
  bytesSent: number;
  circuitsDropped: number;
  /** Requests whose handler threw: a server bug (logged at error level; the circuit is dropped). */
  internalErrors: number;
}

/** What a circuit needs from its server. */
export interface CircuitHost {
  readonly registry: PvSource;
  readonly config: CaServerConfig;
  readonly logger: Logger;
  readonly counters: CaCounters;
  readonly tcpPort: number;
  /** The entry of the served PV named by bytes[start, end) (latin1), if any. */
  lookup(bytes: Uint8Array, start: number, end: number): PvEntry | undefined;
  /** Asks for `flush()` on this circuit at the end of the current tick. */
  scheduleFlush(c: Circuit): void;
  /** The circuit closed: forget it. */
  circuitClosed(c: Circuit): void;
}

/** Socket user data: the circuit attached at `open`. */
export interface CircuitSocketData {
  circuit: Circuit | null;
}

type CaSocket = Socket<CircuitSocketData>;

const OUT_INITIAL = 64 * 1024;
const OUT_RETAIN = 1024 * 1024;
// Above this many unsent bytes the circuit stops reading requests until the client catches up.
const PAUSE_READ_BYTES = 4 * 1024 * 1024;
// Budget of pending monitor updates written per drain before handing the data to the kernel.
const PENDING_BATCH_BYTES = 256 * 1024;
// A tick's send buffer is handed to the kernel early past this size, so a burst of big replies or
// updates (e.g. many subscriptions to a large array) turns into backlog/coalescing, not a huge buffer.
const FLUSH_NOW_BYTES = 1024 * 1024;
const NO_CHANNEL = 0xffffffff;
const textDecoder = new TextDecoder("utf-8", { fatal: false });

class Channel implements FanoutChannel {
  // Allocated with the first subscription (most channels never subscribe).
  subs: Map<number, Subscription> | null = null;
  alive = true;
  pendingWrites = 0;
  writeTail: Promise<void> | null = null;
  constructor(
    readonly circuit: Circuit,
    readonly cid: number,
    readonly sid: number,
    readonly pv: Pv,
    readonly entry: PvEntry,
  ) {}
  pvRemoved(): void {
    this.circuit.disconnectChannel(this);
  }
}

class Subscription implements FanoutSubscription {
  pending = false;
  alive = true;
  constructor(
    readonly id: number,
    readonly channel: Channel,
    readonly dbrType: number,
    readonly count: number,
    readonly mask: number,
    readonly sink: SubscriptionSink,
  ) {}
}

/** A TCP virtual circuit with one client (one per client process and priority). */
export class Circuit implements SubscriptionSink {
  readonly peer: string;
  readonly ip: string;
  clientMinor = 0;
  priority = 0;
  user = "";
  host = "";
  closed = false;
  /** True while queued by the host for a flush this tick. */
  flushScheduled = false;

  private versionSeen = false;
  private anyChannelCreated = false;
  private eventsOff = false;
  private readonly reader: MessageReader;
  private readonly channels = new Map<number, Channel>(); // by SID
  private readonly subs = new Map<number, Subscription>(); // by subscription ID
  private readonly pendingSubs = new Set<Subscription>();
  private nextSid = 1;
  private sidWrapped = false;
  private pendingWrites = 0;
  private out = new Uint8Array(OUT_INITIAL);
  private outView = new DataView(this.out.buffer);
  private outLen = 0;
  private readonly backlog: Uint8Array[] = [];
  private backlogBytes = 0;
  private readPaused = false;
  private readonly warned = new Set<string>();
  private readonly log: Logger;

  constructor(
    private readonly socket: CaSocket,
    private readonly srv: CircuitHost,
  ) {
    this.ip = socket.remoteAddress;
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = srv.logger.child({ peer: this.peer });
    this.reader = new MessageReader({
      maxPayload: srv.config.maxPayloadBytes,
      extendedAllowed: () => this.clientMinor >= 9,
    });
    // rsrv sends its VERSION at accept time, before reading anything (fact sheet §10.1).
    this.append(encodeVersion());
    this.flush();
  }

  /** Channels open on this circuit. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Subscriptions on this circuit. */
  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** Unsent bytes held for this circuit. */
  get queuedBytes(): number {
    return this.backlogBytes + this.outLen;
  }

  /** Bytes arrived from the socket: handle every whole message, then send the replies. */
  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    const reader = this.reader;
    reader.push(chunk);
    // reader.read() fills one reused header (no per-message objects on this hot path); handlers
    // must copy what they keep beyond the call (see startWrite).
    const h = reader.header;
    for (;;) {
      const r = reader.read();
      if (r === READ.NONE) break;
      if (r !== READ.MESSAGE) {
        if (r === READ.MISALIGNED) {
          this.sendError(
            NO_CHANNEL,
            ECA.INTERNAL,
            h,
            reader.extended,
            "Missaligned protocol rejected",
          );
          this.drop(`misaligned message (command ${h.command}, size ${h.payloadSize})`);
          return;
        }
        this.warnOnce(
          "oversized",
          `request payload of ${h.payloadSize} bytes exceeds the limit of ${this.srv.config.maxPayloadBytes}; skipped`,
        );
        this.sendError(
          this.cidForSid(h),
          ECA.TOLARGE,
          h,
          reader.extended,
          `payload of ${h.payloadSize} bytes exceeds the server limit`,
        );
        continue;
      }
      this.srv.counters.requests++;
      try {
        this.dispatch(h, reader.bytes, reader.payloadOffset, reader.extended);
      } catch (e) {
        // A bug handling one request must not take the server down; the circuit is suspect though.
        this.srv.counters.internalErrors++;
        this.log.error({ err: e, command: h.command }, "CA request handler failed");
        this.drop("internal error");
      }
      if (this.closed) return;
      if (this.outLen >= FLUSH_NOW_BYTES) {
        this.flush();
        if (this.closed) return;
      }
    }
    this.flush();
  }

  /** The socket can take more data: write the backlog, then the coalesced monitor updates. */
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
        return;
      }
      this.backlog.shift();
    }
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.flush();
    this.writePending();
  }

  /** The socket closed (either side): release every channel and subscription. */
  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const ch of this.channels.values()) this.releaseChannel(ch);
    this.channels.clear();
    this.subs.clear();
    this.pendingSubs.clear();
    this.backlog.length = 0;
    this.backlogBytes = 0;
    this.srv.circuitClosed(this);
  }

  /** Closes the circuit after sending what is queued (best effort). */
  drop(reason: string): void {
    if (this.closed) return;
    this.log.warn({ reason }, "CA circuit dropped");
    this.srv.counters.circuitsDropped++;
    this.flush();
    this.socket.end();
    this.onClose();
  }

  /** Closes the circuit at server shutdown. */
  shutdown(): void {
    if (this.closed) return;
    this.flush();
    this.socket.end();
    this.onClose();
  }

  /** Sends this tick's replies and updates in one write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.outLen === 0) return;
    const len = this.outLen;
    this.outLen = 0;
    if (this.backlog.length > 0) {
      this.pushBacklog(this.out.slice(0, len));
    } else {
      const n = this.socket.write(this.out, 0, len);
      if (n < 0) return; // closing: the close handler cleans up
      this.srv.counters.bytesSent += n;
      if (n < len) this.pushBacklog(this.out.slice(n, len));
    }
    if (this.out.length > OUT_RETAIN) {
      this.out = new Uint8Array(OUT_INITIAL);
      this.outView = new DataView(this.out.buffer);
    }
  }

  /** A PV update for one of our subscriptions (called by the fan-out). */
  queueUpdate(s: FanoutSubscription): void {
    const sub = s as Subscription;
    if (this.closed || !sub.alive) return;
    if (sub.pending) {
      this.srv.counters.updatesCoalesced++;
      return;
    }
    if (this.eventsOff || this.backlog.length > 0) {
      sub.pending = true;
      this.pendingSubs.add(sub);
      return;
    }
    this.writeUpdate(sub);
    if (this.outLen >= FLUSH_NOW_BYTES) this.flush();
    else if (!this.flushScheduled) this.srv.scheduleFlush(this);
  }

  /** The channel's PV was removed from the registry: SERVER_DISCONN and forget the channel. */
  disconnectChannel(ch: Channel): void {
    if (!ch.alive) return;
    this.channels.delete(ch.sid);
    this.releaseChannel(ch);
    if (this.closed) return;
    this.append(encodeServerDisconn(ch.cid));
    if (!this.flushScheduled) this.srv.scheduleFlush(this);
  }

  // ---- request dispatch -------------------------------------------------------------------

  private dispatch(h: CaHeader, bytes: Uint8Array, off: number, ext: boolean): void {
    // Only requests that read their payload get a view of it (READ_NOTIFY and the other
    // header-only requests of a connect storm allocate nothing here).
    const end = off + h.payloadSize;
    switch (h.command) {
      case CMD.VERSION:
        this.onVersion(h);
        return;
      case CMD.EVENT_ADD:
        this.onEventAdd(h, bytes.subarray(off, end), ext);
        return;
      case CMD.EVENT_CANCEL:
        this.onEventCancel(h, ext);
        return;
      case CMD.READ:
        this.onRead(h, ext, false);
        return;
      case CMD.READ_NOTIFY:
        this.onRead(h, ext, true);
        return;
      case CMD.WRITE:
        this.onWrite(h, bytes.subarray(off, end), ext, false);
        return;
      case CMD.WRITE_NOTIFY:
        this.onWrite(h, bytes.subarray(off, end), ext, true);
        return;
      case CMD.SEARCH:
        this.onTcpSearch(h, bytes.subarray(off, end));
        return;
      case CMD.EVENTS_OFF:
        this.eventsOff = true;
        return;
      case CMD.EVENTS_ON:
        this.eventsOff = false;
        this.writePending();
        return;
      case CMD.READ_SYNC:
        this.append(encodeReadSync(h));
        return;
      case CMD.CLEAR_CHANNEL:
        this.onClearChannel(h);
        return;
      case CMD.CREATE_CHAN:
        this.onCreateChan(h, bytes, off);
        return;
      case CMD.CLIENT_NAME:
      case CMD.HOST_NAME:
        this.onName(h, bytes.subarray(off, end), ext);
        return;
      case CMD.ECHO:
        // Answered at once, ahead of coalesced monitor traffic: libca's watchdog depends on it.
        this.append(encodeEcho(h, bytes.subarray(off, end)));
        this.flush();
        return;
      default: {
        const name = CMD_NAME[h.command] ?? String(h.command);
        this.sendError(
          NO_CHANNEL,
          ECA.INTERNAL,
          h,
          ext,
          "invalid (damaged?) request code from TCP",
        );
        this.drop(`invalid request code ${name}`);
      }
    }
  }

  private onVersion(h: CaHeader): void {
    // rsrv: priority > 99 or minor < 4 ends the circuit.
    if (h.count < 4) {
      this.sendError(NO_CHANNEL, ECA.DEFUNCT, h, false, "CA client version too old");
      this.drop(`client minor version ${h.count} < 4`);
      return;
    }
    if (h.dataType > 99) {
      this.drop(`circuit priority ${h.dataType} > 99`);
      return;
    }
    this.versionSeen = true;
    this.clientMinor = h.count;
    this.priority = h.dataType;
  }

  private onName(h: CaHeader, payload: Uint8Array, ext: boolean): void {
    const nul = payload.indexOf(0);
    if (payload.length > 512 || nul < 0) {
      this.sendError(NO_CHANNEL, ECA.INTERNAL, h, ext, "bad client/host name");
      this.drop("client/host name without NUL or longer than 512 bytes");
      return;
    }
    if (this.anyChannelCreated) {
      this.sendError(
        NO_CHANNEL,
        ECA.INTERNAL,
        h,
        ext,
        "client/host name after channel creation ignored",
      );
      return;
    }
    const name = textDecoder.decode(payload.subarray(0, nul));
    if (h.command === CMD.CLIENT_NAME) this.user = name;
    else this.host = name;
  }

  // The name is read in place from `bytes` at `off` (payloadSize bytes): no payload view.
  private onCreateChan(h: CaHeader, bytes: Uint8Array, off: number): void {
    if (h.payloadSize <= 1) return; // rsrv ignores empty names silently
    if (!this.versionSeen && h.p2 >= 4 && h.p2 <= 0xffff) this.clientMinor = h.p2;
    const cid = h.p1;
    const stop = off + h.payloadSize;
    let nul = bytes.indexOf(0, off);
    if (nul < 0 || nul > stop) nul = stop;
    const end = nul - off;
    const cfg = this.srv.config;
    if (end > cfg.maxNameLength) {
      this.warnOnce("name", `PV name of ${end} bytes exceeds the limit of ${cfg.maxNameLength}`);
      this.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0);
      return;
    }
    if (end === 0) {
      this.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0);
      return;
    }
    const entry = this.srv.lookup(bytes, off, nul);
    if (entry === undefined) {
      this.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0);
      return;
    }
    if (this.channels.size >= cfg.maxChannelsPerCircuit) {
      this.warnOnce("channels", `channel limit ${cfg.maxChannelsPerCircuit} per circuit reached`);
      this.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0);
      return;
    }
    const pv = entry.pv;
    const sid = this.allocSid();
    const ch = new Channel(this, cid, sid, pv, entry);
    entry.addChannel(ch);
    this.channels.set(sid, ch);
    this.anyChannelCreated = true;
    const rights = pv.writable ? ACCESS.READ | ACCESS.WRITE : ACCESS.READ;
    this.appendHeader(CMD.ACCESS_RIGHTS, 0, 0, cid, rights);
    // Older clients (< 4.9) cannot take the extended header: rsrv clamps the count to 0xFFFE.
    const count = this.clientMinor >= 9 ? pv.count : Math.min(pv.count, 0xfffe);
    this.appendHeader(CMD.CREATE_CHAN, nativeDbrType(pv.kind), count, cid, sid);
  }

  private onClearChannel(h: CaHeader): void {
    const ch = this.channels.get(h.p1);
    // Lenient (spec-rst): a stale SID is ignored rather than ending the circuit like rsrv does.
    if (ch === undefined) return;
    this.channels.delete(ch.sid);
    this.releaseChannel(ch);
    this.append(encodeClearChannelReply(h));
  }

  private onRead(h: CaHeader, ext: boolean, notify: boolean): void {
    const ch = this.channels.get(h.p1);
    if (ch === undefined) return; // stale SID (e.g. just disconnected): libca already gave up on it
    if (!isValidDbrType(h.dataType)) {
      // rsrv drops the circuit silently for a type > 38 (fact sheet §3.2).
      this.drop(`invalid DBR type ${h.dataType} in read`);
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    if (notify && h.count <= 1 && this.readScalarInPlace(ch.pv, h)) return;
    const enc = ch.entry.encode(h.dataType, h.count);
    const allowExt = this.clientMinor >= 9;
    if ("error" in enc) {
      if (!notify) {
        this.sendError(
          ch.cid,
          enc.error,
          h,
          ext,
          `get of ${ch.pv.name} as DBR type ${h.dataType} failed`,
        );
        return;
      }
      this.appendSafe(h, ext, ch.cid, () =>
        this.appendWithPayload(
          CMD.READ_NOTIFY,
          h.dataType,
          Math.max(1, h.count),
          enc.error,
          h.p2,
          zeroPayload(h.dataType, h.count),
        ),
      );
      return;
    }
    if (!this.sizeAllowed(h, ext, ch, enc.payload.length)) return;
    this.appendSafe(h, ext, ch.cid, () =>
      notify
        ? this.appendWithPayload(
            CMD.READ_NOTIFY,
            h.dataType,
            enc.count,
            ECA.NORMAL,
            h.p2,
            enc.payload,
          )
        : this.append(encodeReadReply(h.dataType, enc.count, ch.cid, h.p2, enc.payload, allowExt)),
    );
  }

  private onWrite(h: CaHeader, payload: Uint8Array, ext: boolean, notify: boolean): void {
    const ch = this.channels.get(h.p1);
    if (ch === undefined) return;
    const fail = (eca: number, text: string) => {
      if (notify) this.append(encodeWriteNotifyReply(h.dataType, h.count, eca, h.p2));
      else this.sendError(ch.cid, eca, h, ext, text);
    };
    if (!isValidDbrType(h.dataType)) {
      fail(ECA.BADTYPE, `invalid DBR type ${h.dataType}`);
      return;
    }
    if (!ch.pv.writable) {
      fail(ECA.NOWTACCESS, `${ch.pv.name} is read-only`);
      return;
    }
    if (this.pendingWrites >= this.srv.config.maxPendingWritesPerCircuit) {
      this.warnOnce(
        "writes",
        `more than ${this.srv.config.maxPendingWritesPerCircuit} writes pending`,
      );
      fail(ECA.PUTCBINPROG, "too many writes in progress on this circuit");
      return;
    }
    const dec = decodePut(h.dataType, h.count, payload, ch.pv, notify);
    if ("error" in dec) {
      this.log.debug({ pv: ch.pv.name, reason: dec.message }, "CA put refused");
      fail(dec.error, dec.message);
      return;
    }
    this.startWrite(ch, h, ext, notify, dec.value);
  }

  private startWrite(
    ch: Channel,
    h: CaHeader,
    ext: boolean,
    notify: boolean,
    value: PvValue,
  ): void {
    const ctx: WriteContext = { user: this.user, host: this.host, peer: this.peer };
    // The request header is the reader's reused object: keep a copy for the async completion.
    const req: CaHeader = { ...h };
    const settle = (eca: number, reason: string | null) => {
      ch.pendingWrites--;
      this.pendingWrites--;
      if (ch.pendingWrites === 0) ch.writeTail = null;
      if (this.closed || !ch.alive) return;
      if (notify) this.append(encodeWriteNotifyReply(req.dataType, req.count, eca, req.p2));
      else if (reason !== null) this.sendError(ch.cid, eca, req, ext, reason);
      else return;
      if (!this.flushScheduled) this.srv.scheduleFlush(this);
    };
    const onOk = () => settle(ECA.NORMAL, null);
    const onFail = (e: unknown) => {
      const reason = e instanceof Error ? e.message : String(e);
      const readonly = e instanceof PvWriteError && e.code === "readonly";
      this.log.info({ pv: ch.pv.name, user: this.user, host: this.host, reason }, "CA put failed");
      settle(readonly ? ECA.NOWTACCESS : ECA.PUTFAIL, reason);
    };
    const run = () => ch.pv.write(value, ctx).then(onOk, onFail);
    ch.pendingWrites++;
    this.pendingWrites++;
    // Writes to one channel complete in order, like rsrv's one-put-at-a-time per channel.
    ch.writeTail = ch.writeTail === null ? run() : ch.writeTail.then(run);
  }

  private onEventAdd(h: CaHeader, payload: Uint8Array, ext: boolean): void {
    const ch = this.channels.get(h.p1);
    if (ch === undefined) return;
    if (!isValidDbrType(h.dataType)) {
      this.drop(`invalid DBR type ${h.dataType} in subscription`);
      return;
    }
    // libca always sends the 16-byte event block; a client that omits it gets VALUE|ALARM.
    let mask = DBE.VALUE | DBE.ALARM;
    if (payload.length >= 14) mask = (payload[12] as number) * 256 + (payload[13] as number);
    // Unknown bits are ignored (spec-rst); a mask selecting nothing is refused, without dropping.
    mask &= DBE.VALUE | DBE.LOG | DBE.ALARM | DBE.PROPERTY;
    if (mask === 0) {
      this.sendError(ch.cid, ECA.BADMASK, h, ext, "subscription event mask selects no events");
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    const maxArray = this.srv.config.maxArrayBytes;
    if (maxArray !== null && dbrPayloadSize(h.dataType, h.count || ch.pv.count) > maxArray) {
      this.sendError(
        ch.cid,
        ECA.TOLARGE,
        h,
        ext,
        `subscription larger than EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`,
      );
      return;
    }
    const old = this.subs.get(h.p2);
    if (old !== undefined) this.removeSub(old);
    if (this.subs.size >= this.srv.config.maxSubscriptionsPerCircuit) {
      this.warnOnce(
        "subs",
        `subscription limit ${this.srv.config.maxSubscriptionsPerCircuit} per circuit reached`,
      );
      this.sendError(ch.cid, ECA.ALLOCMEM, h, ext, "too many subscriptions on this circuit");
      return;
    }
    const sub = new Subscription(h.p2, ch, h.dataType, h.count, mask, this);
    this.subs.set(sub.id, sub);
    ch.subs ??= new Map();
    ch.subs.set(sub.id, sub);
    ch.entry.addSubscription(sub);
    // The first update is mandatory and immediate, whatever the mask (fact sheet §10.17).
    this.queueUpdate(sub);
  }

  private onEventCancel(h: CaHeader, ext: boolean): void {
    const sub = this.subs.get(h.p2);
    if (sub === undefined || sub.channel.sid !== h.p1) {
      // rsrv also drops the circuit here; an error is enough to tell the client.
      this.sendError(this.cidForSid(h), ECA.BADMONID, h, ext, "unknown subscription");
      return;
    }
    this.removeSub(sub);
    this.append(encodeEventCancelAck(sub.dbrType, sub.count, h.p1, sub.id));
  }

  private onTcpSearch(h: CaHeader, payload: Uint8Array): void {
    let end = payload.indexOf(0);
    if (end < 0) end = payload.length;
    const found =
      end > 0 &&
      end <= this.srv.config.maxNameLength &&
      this.srv.lookup(payload, 0, end) !== undefined;
    if (found) this.append(encodeSearchReply(this.srv.tcpPort, h.p2));
    else if (h.dataType === 10) this.append(encodeNotFound(h));
  }

  // ---- helpers --------------------------------------------------------------------------------

  private writeUpdate(sub: Subscription): void {
    const enc: Encoded = sub.channel.entry.encode(sub.dbrType, sub.count);
    let payload: Uint8Array;
    let count: number;
    let status: number;
    if ("error" in enc) {
      payload = zeroPayload(sub.dbrType, sub.count);
      count = Math.max(1, sub.count);
      status = enc.error;
    } else {
      payload = enc.payload;
      count = enc.count;
      status = ECA.NORMAL;
    }
    const hs = headerSizeFor(payload.length, count);
    if (hs === 24 && this.clientMinor < 9) {
      this.warnOnce("16k", "monitor update too large for a pre-3.14 client");
      return;
    }
    this.reserve(hs + payload.length);
    writeEventUpdateHeader(
      this.outView,
      this.outLen,
      sub.dbrType,
      count,
      status,
      sub.id,
      payload.length,
      true,
    );
    this.out.set(payload, this.outLen + hs);
    this.outLen += hs + payload.length;
    this.srv.counters.updatesSent++;
  }

  // READ_NOTIFY reply of a plain numeric type of a scalar PV (a connect storm's gets), encoded
  // straight into the send buffer: no payload allocation, no copy. False: use the general path.
  private readScalarInPlace(pv: Pv, h: CaHeader): boolean {
    const maxArray = this.srv.config.maxArrayBytes;
    if (maxArray !== null && maxArray < 8) return false;
    this.reserve(24);
    const o = this.outLen;
    if (!encodePlainScalarInto(pv, h.dataType, this.out, o + 16)) return false;
    // Runs once per get of a scalar (10,000 times in a connect storm): no header object.
    writeStandardHeader(this.outView, o, CMD.READ_NOTIFY, 8, h.dataType, 1, ECA.NORMAL, h.p2);
    this.outLen = o + 24;
    return true;
  }

  /** Writes the latest value of every pending subscription, in batches, while the socket takes it. */
  private writePending(): void {
    if (this.eventsOff || this.closed) return;
    while (this.pendingSubs.size > 0 && this.backlog.length === 0) {
      for (const sub of this.pendingSubs) {
        this.pendingSubs.delete(sub);
        sub.pending = false;
        if (sub.alive) this.writeUpdate(sub);
        if (this.outLen >= PENDING_BATCH_BYTES) break;
      }
      this.flush();
      if (this.closed) return;
    }
  }

  // A request for more elements than the channel has gets ECA_BADCOUNT (the circuit continues).
  private countAllowed(ch: Channel, h: CaHeader, ext: boolean): boolean {
    if (h.count <= ch.pv.count) return true;
    const text = `count ${h.count} exceeds the channel's ${ch.pv.count} elements`;
    this.sendError(ch.cid, ECA.BADCOUNT, h, ext, text);
    return false;
  }

  private sizeAllowed(h: CaHeader, ext: boolean, ch: Channel, size: number): boolean {
    const maxArray = this.srv.config.maxArrayBytes;
    if (maxArray !== null && size > maxArray) {
      this.sendError(
        ch.cid,
        ECA.TOLARGE,
        h,
        ext,
        `reply of ${size} bytes exceeds EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`,
      );
      return false;
    }
    return true;
  }

  // Encoders throw RangeError when the extended header is needed but the client is older than 3.14.
  private appendSafe(h: CaHeader, ext: boolean, cid: number, write: () => void): void {
    try {
      write();
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      this.sendError(cid, ECA.ARRAY16K, h, ext, "reply needs the large-array protocol (CA ≥ 4.9)");
    }
  }

  // Header-only message written straight into the send buffer (no per-message allocation).
  private appendHeader(
    command: number,
    dataType: number,
    count: number,
    p1: number,
    p2: number,
  ): void {
    this.reserve(24);
    if (count > 0xffff) {
      this.outLen += writeHeader(
        this.outView,
        this.outLen,
        { command, payloadSize: 0, dataType, count, p1, p2 },
        this.clientMinor >= 9,
      );
      return;
    }
    // The common case (connect storm: ACCESS_RIGHTS + CREATE_CHAN per channel): a standard
    // header written field by field, no header object.
    writeStandardHeader(this.outView, this.outLen, command, 0, dataType, count, p1, p2);
    this.outLen += 16;
  }

  // Header + already padded payload; throws RangeError (nothing written) if the client is too old.
  private appendWithPayload(
    command: number,
    dataType: number,
    count: number,
    p1: number,
    p2: number,
    payload: Uint8Array,
  ): void {
    const hs = headerSizeFor(payload.length, count);
    if (hs === 24 && this.clientMinor < 9) throw new RangeError("extended header needed");
    this.reserve(hs + payload.length);
    writeHeader(
      this.outView,
      this.outLen,
      { command, payloadSize: payload.length, dataType, count, p1, p2 },
      true,
    );
    this.out.set(payload, this.outLen + hs);
    this.outLen += hs + payload.length;
  }

  private sendError(cid: number, eca: number, h: CaHeader, ext: boolean, text: string): void {
    this.append(encodeError(cid, eca, h, ext, text));
  }

  private cidForSid(h: CaHeader): number {
    const c = h.command;
    const sidBased =
      c === CMD.EVENT_ADD ||
      c === CMD.EVENT_CANCEL ||
      c === CMD.READ ||
      c === CMD.READ_NOTIFY ||
      c === CMD.WRITE ||
      c === CMD.WRITE_NOTIFY;
    if (!sidBased) return NO_CHANNEL;
    return this.channels.get(h.p1)?.cid ?? NO_CHANNEL;
  }

  private append(msg: Uint8Array): void {
    this.reserve(msg.length);
    this.out.set(msg, this.outLen);
    this.outLen += msg.length;
  }

  private reserve(n: number): void {
    const need = this.outLen + n;
    if (need <= this.out.length) return;
    const next = new Uint8Array(Math.max(need, this.out.length * 2));
    next.set(this.out.subarray(0, this.outLen));
    this.out = next;
    this.outView = new DataView(next.buffer);
  }

  private pushBacklog(b: Uint8Array): void {
    this.backlog.push(b);
    this.backlogBytes += b.length;
    if (this.backlogBytes > this.srv.config.maxQueuedBytesPerCircuit) {
      this.backlog.length = 0;
      this.backlogBytes = 0;
      this.drop(
        `client not reading: more than ${this.srv.config.maxQueuedBytesPerCircuit} bytes unsent`,
      );
      return;
    }
    if (!this.readPaused && this.backlogBytes > PAUSE_READ_BYTES) {
      this.readPaused = true;
      this.socket.pause();
    }
  }

  private removeSub(sub: Subscription): void {
    sub.alive = false;
    this.subs.delete(sub.id);
    sub.channel.subs?.delete(sub.id);
    sub.channel.entry.removeSubscription(sub);
    if (sub.pending) {
      sub.pending = false;
      this.pendingSubs.delete(sub);
    }
  }

  private releaseChannel(ch: Channel): void {
    ch.alive = false;
    if (ch.subs !== null) {
      for (const sub of ch.subs.values()) {
        sub.alive = false;
        this.subs.delete(sub.id);
        ch.entry.removeSubscription(sub);
        if (sub.pending) this.pendingSubs.delete(sub);
      }
      ch.subs = null;
    }
    ch.entry.removeChannel(ch);
  }

  private allocSid(): number {
    // Circuit-local SIDs, unique by construction until the u32 counter first wraps; after that,
    // skip any still in use.
    if (!this.sidWrapped) {
      const sid = this.nextSid;
      if (sid < 0xfffffffe) {
        this.nextSid = sid + 1;
        return sid;
      }
      this.sidWrapped = true;
    }
    for (;;) {
      const sid = this.nextSid;
      this.nextSid = sid >= 0xfffffffe ? 1 : sid + 1;
      if (!this.channels.has(sid)) return sid;
    }
  }

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn({ user: this.user, host: this.host }, `CA request refused: ${msg}`);
  }
}
