/**
 * One TCP virtual circuit: protocol state and dispatch. Parses client requests (the codec's
 * MessageReader and request readers), keeps the circuit's channels and subscriptions (channel.ts)
 * and answers through its send queue (send-queue.ts: buffer, backlog, coalescing, flush).
 */
import type { Socket } from "bun";
import type { Logger } from "pino";
import { DBE, type PvValue, PvWriteError, type WriteContext } from "../../pv/types.ts";
import { ACCESS, CMD, CMD_NAME, ECA } from "../codec/constants.ts";
import { decodePut } from "../codec/dbr-decode.ts";
import { nativeDbrType } from "../codec/dbr-encode.ts";
import { dbrPayloadSize, isValidDbrType } from "../codec/dbr-layout.ts";
import type { CaHeader } from "../codec/header.ts";
import {
  encodeClearChannelReply,
  encodeEcho,
  encodeEventCancelAck,
  encodeNotFound,
  encodeReadSync,
  encodeSearchReply,
  encodeServerDisconn,
  encodeVersion,
} from "../codec/messages.ts";
import {
  createChanCid,
  createChanMinor,
  eventAddMask,
  namesChannelBySid,
  requestIoid,
  requestSid,
  searchId,
  searchWantsNotFound,
  subscriptionId,
  versionMinor,
  versionPriority,
} from "../codec/requests.ts";
import { MessageReader, READ } from "../codec/stream.ts";
import { type Channel, ChannelTable, Subscription } from "./channel.ts";
import type { CaServerConfig } from "./config.ts";
import type { FanoutSubscription, PvEntry, SubscriptionSink } from "./fanout.ts";
import { Replies } from "./replies.ts";
import { FLUSH_NOW_BYTES, SendQueue } from "./send-queue.ts";

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

const NO_CHANNEL = 0xffffffff;
const textDecoder = new TextDecoder("utf-8", { fatal: false });

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
  private readonly q: SendQueue<Subscription>;
  private readonly reply: Replies;
  private readonly table: ChannelTable;
  private pendingWrites = 0;
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
    const counters = srv.counters;
    this.q = new SendQueue<Subscription>(
      socket,
      srv.config.maxQueuedBytesPerCircuit,
      (n) => {
        counters.bytesSent += n;
      },
      (reason) => this.drop(reason),
    );
    this.reply = new Replies(this.q);
    this.table = new ChannelTable((sub) => this.q.unmark(sub));
    // rsrv sends its VERSION at accept time, before reading anything (docs/ca-protocol-facts.md).
    this.q.append(encodeVersion());
    this.flush();
  }

  /** Channels open on this circuit. */
  get channelCount(): number {
    return this.table.channelCount;
  }

  /** Subscriptions on this circuit. */
  get subscriptionCount(): number {
    return this.table.subscriptionCount;
  }

  /** Unsent bytes held for this circuit. */
  get queuedBytes(): number {
    return this.q.queuedBytes;
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
        if (this.framingError(r, h, reader.extended)) return;
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
      if (this.q.len >= FLUSH_NOW_BYTES) {
        this.flush();
        if (this.closed) return;
      }
    }
    this.flush();
  }

  // A misaligned message ends the circuit (true); an oversized one is skipped with an error.
  private framingError(r: number, h: CaHeader, ext: boolean): boolean {
    if (r === READ.MISALIGNED) {
      this.sendError(NO_CHANNEL, ECA.INTERNAL, h, ext, "Missaligned protocol rejected");
      this.drop(`misaligned message (command ${h.command}, size ${h.payloadSize})`);
      return true;
    }
    const max = this.srv.config.maxPayloadBytes;
    this.warnOnce(
      "oversized",
      `request payload of ${h.payloadSize} bytes exceeds the limit of ${max}; skipped`,
    );
    const text = `payload of ${h.payloadSize} bytes exceeds the server limit`;
    this.sendError(this.cidForSid(h), ECA.TOLARGE, h, ext, text);
    return false;
  }

  /** The socket can take more data: write the backlog, then the coalesced monitor updates. */
  onDrain(): void {
    if (this.closed) return;
    if (!this.q.drain()) return;
    this.flush();
    this.writePending();
  }

  /** The socket closed (either side): release every channel and subscription. */
  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.table.closeAll();
    this.q.close();
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
    if (!this.closed) this.q.flush();
  }

  /** A PV update for one of our subscriptions (called by the fan-out). */
  queueUpdate(s: FanoutSubscription): void {
    const sub = s as Subscription;
    if (this.closed || !sub.alive) return;
    if (sub.pending) {
      this.srv.counters.updatesCoalesced++;
      return;
    }
    if (this.eventsOff || this.q.congested) {
      this.q.markPending(sub);
      return;
    }
    this.writeUpdate(sub);
    if (this.q.len >= FLUSH_NOW_BYTES) this.flush();
    else this.scheduleFlush();
  }

  /** The channel's PV was removed from the registry: SERVER_DISCONN and forget the channel. */
  disconnectChannel(ch: Channel): void {
    if (!ch.alive) return;
    this.table.close(ch);
    if (this.closed) return;
    this.q.append(encodeServerDisconn(ch.cid));
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
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
        this.onEventAdd(h, bytes, off, ext);
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
        this.q.append(encodeReadSync(h));
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
        this.q.append(encodeEcho(h, bytes.subarray(off, end)));
        this.flush();
        return;
      default: {
        const name = CMD_NAME[h.command] ?? String(h.command);
        const text = "invalid (damaged?) request code from TCP";
        this.sendError(NO_CHANNEL, ECA.INTERNAL, h, ext, text);
        this.drop(`invalid request code ${name}`);
      }
    }
  }

  private onVersion(h: CaHeader): void {
    const minor = versionMinor(h);
    const priority = versionPriority(h);
    // rsrv: priority > 99 or minor < 4 ends the circuit.
    if (minor < 4) {
      this.sendError(NO_CHANNEL, ECA.DEFUNCT, h, false, "CA client version too old");
      this.drop(`client minor version ${minor} < 4`);
      return;
    }
    if (priority > 99) {
      this.drop(`circuit priority ${priority} > 99`);
      return;
    }
    this.versionSeen = true;
    this.setClientMinor(minor);
    this.priority = priority;
  }

  private onName(h: CaHeader, payload: Uint8Array, ext: boolean): void {
    const nul = payload.indexOf(0);
    if (payload.length > 512 || nul < 0) {
      this.sendError(NO_CHANNEL, ECA.INTERNAL, h, ext, "bad client/host name");
      this.drop("client/host name without NUL or longer than 512 bytes");
      return;
    }
    if (this.anyChannelCreated) {
      const text = "client/host name after channel creation ignored";
      this.sendError(NO_CHANNEL, ECA.INTERNAL, h, ext, text);
      return;
    }
    const name = textDecoder.decode(payload.subarray(0, nul));
    if (h.command === CMD.CLIENT_NAME) this.user = name;
    else this.host = name;
  }

  // The name is read in place from `bytes` at `off` (payloadSize bytes): no payload view.
  private onCreateChan(h: CaHeader, bytes: Uint8Array, off: number): void {
    if (h.payloadSize <= 1) return; // rsrv ignores empty names silently
    const minor = createChanMinor(h);
    if (!this.versionSeen && minor >= 4 && minor <= 0xffff) this.setClientMinor(minor);
    const cid = createChanCid(h);
    const stop = off + h.payloadSize;
    let nul = bytes.indexOf(0, off);
    if (nul < 0 || nul > stop) nul = stop;
    const len = nul - off;
    const cfg = this.srv.config;
    if (len > cfg.maxNameLength) {
      this.warnOnce("name", `PV name of ${len} bytes exceeds the limit of ${cfg.maxNameLength}`);
    }
    const entry =
      len === 0 || len > cfg.maxNameLength ? undefined : this.srv.lookup(bytes, off, nul);
    if (entry !== undefined && this.table.channelCount >= cfg.maxChannelsPerCircuit) {
      this.warnOnce("channels", `channel limit ${cfg.maxChannelsPerCircuit} per circuit reached`);
    } else if (entry !== undefined) {
      this.createChannel(cid, entry);
      return;
    }
    this.q.appendHeader(CMD.CREATE_CH_FAIL, 0, 0, cid, 0, this.reply.extOk);
  }

  private createChannel(cid: number, entry: PvEntry): void {
    const pv = entry.pv;
    const ch = this.table.open(this, cid, entry);
    this.anyChannelCreated = true;
    const rights = pv.writable ? ACCESS.READ | ACCESS.WRITE : ACCESS.READ;
    this.q.appendHeader(CMD.ACCESS_RIGHTS, 0, 0, cid, rights, this.reply.extOk);
    // Older clients (< 4.9) cannot take the extended header: rsrv clamps the count to 0xFFFE.
    const count = this.reply.extOk ? pv.count : Math.min(pv.count, 0xfffe);
    this.q.appendHeader(
      CMD.CREATE_CHAN,
      nativeDbrType(pv.kind),
      count,
      cid,
      ch.sid,
      this.reply.extOk,
    );
  }

  private onClearChannel(h: CaHeader): void {
    const ch = this.table.channel(requestSid(h));
    // Lenient: a stale SID is ignored rather than ending the circuit like rsrv does.
    if (ch === undefined) return;
    this.table.close(ch);
    this.q.append(encodeClearChannelReply(h));
  }

  private onRead(h: CaHeader, ext: boolean, notify: boolean): void {
    const ch = this.table.channel(requestSid(h));
    if (ch === undefined) return; // stale SID (e.g. just disconnected): libca already gave up on it
    if (!isValidDbrType(h.dataType)) {
      // rsrv drops the circuit silently for a type > 38.
      this.drop(`invalid DBR type ${h.dataType} in read`);
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    if (
      notify &&
      h.count <= 1 &&
      this.scalarInPlaceAllowed() &&
      this.reply.readScalarInPlace(ch.pv, h)
    ) {
      return;
    }
    const enc = ch.entry.encode(h.dataType, h.count);
    if ("error" in enc && !notify) {
      const text = `get of ${ch.pv.name} as DBR type ${h.dataType} failed`;
      this.sendError(ch.cid, enc.error, h, ext, text);
      return;
    }
    if ("payload" in enc && !this.sizeAllowed(h, ext, ch, enc.payload.length)) return;
    this.reply.read(h, ext, ch.cid, enc, notify);
  }

  private onWrite(h: CaHeader, payload: Uint8Array, ext: boolean, notify: boolean): void {
    const ch = this.table.channel(requestSid(h));
    if (ch === undefined) return;
    const fail = (eca: number, text: string) => {
      if (notify) this.reply.writeNotify(h.dataType, h.count, eca, requestIoid(h));
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
    const max = this.srv.config.maxPendingWritesPerCircuit;
    if (this.pendingWrites >= max) {
      this.warnOnce("writes", `more than ${max} writes pending`);
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
      if (notify) {
        this.reply.writeNotify(req.dataType, req.count, eca, requestIoid(req));
      } else if (reason !== null) this.sendError(ch.cid, eca, req, ext, reason);
      else return;
      this.scheduleFlush();
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

  private onEventAdd(h: CaHeader, bytes: Uint8Array, off: number, ext: boolean): void {
    const ch = this.table.channel(requestSid(h));
    if (ch === undefined) return;
    if (!isValidDbrType(h.dataType)) {
      this.drop(`invalid DBR type ${h.dataType} in subscription`);
      return;
    }
    // libca always sends the 16-byte event block; a client that omits it gets VALUE|ALARM.
    let mask = eventAddMask(bytes, off, h.payloadSize);
    if (mask < 0) mask = DBE.VALUE | DBE.ALARM;
    // Unknown bits are ignored; a mask selecting nothing is refused, without dropping.
    mask &= DBE.VALUE | DBE.LOG | DBE.ALARM | DBE.PROPERTY;
    if (mask === 0) {
      this.sendError(ch.cid, ECA.BADMASK, h, ext, "subscription event mask selects no events");
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    const maxArray = this.srv.config.maxArrayBytes;
    if (maxArray !== null && dbrPayloadSize(h.dataType, h.count || ch.pv.count) > maxArray) {
      const text = `subscription larger than EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`;
      this.sendError(ch.cid, ECA.TOLARGE, h, ext, text);
      return;
    }
    const id = subscriptionId(h);
    const old = this.table.subscription(id);
    if (old !== undefined) this.table.removeSubscription(old);
    const maxSubs = this.srv.config.maxSubscriptionsPerCircuit;
    if (this.table.subscriptionCount >= maxSubs) {
      this.warnOnce("subs", `subscription limit ${maxSubs} per circuit reached`);
      this.sendError(ch.cid, ECA.ALLOCMEM, h, ext, "too many subscriptions on this circuit");
      return;
    }
    const sub = new Subscription(id, ch, h.dataType, h.count, mask, this);
    this.table.addSubscription(sub);
    // The first update is mandatory and immediate, whatever the mask.
    this.queueUpdate(sub);
  }

  private onEventCancel(h: CaHeader, ext: boolean): void {
    const sid = requestSid(h);
    const sub = this.table.subscription(subscriptionId(h));
    if (sub === undefined || sub.channel.sid !== sid) {
      // rsrv also drops the circuit here; an error is enough to tell the client.
      this.sendError(this.cidForSid(h), ECA.BADMONID, h, ext, "unknown subscription");
      return;
    }
    this.table.removeSubscription(sub);
    this.q.append(encodeEventCancelAck(sub.dbrType, sub.count, sid, sub.id));
  }

  private onTcpSearch(h: CaHeader, payload: Uint8Array): void {
    let end = payload.indexOf(0);
    if (end < 0) end = payload.length;
    const found =
      end > 0 &&
      end <= this.srv.config.maxNameLength &&
      this.srv.lookup(payload, 0, end) !== undefined;
    if (found) this.q.append(encodeSearchReply(this.srv.tcpPort, searchId(h)));
    else if (searchWantsNotFound(h)) this.q.append(encodeNotFound(h));
  }

  // ---- replies ---------------------------------------------------------------------------------

  private writeUpdate(sub: Subscription): void {
    if (this.reply.update(sub)) this.srv.counters.updatesSent++;
    else this.warnOnce("16k", "monitor update too large for a pre-3.14 client");
  }

  // The in-place scalar reply carries 8 bytes: only when EPICS_CA_MAX_ARRAY_BYTES allows them.
  private scalarInPlaceAllowed(): boolean {
    const maxArray = this.srv.config.maxArrayBytes;
    return maxArray === null || maxArray >= 8;
  }

  /** Writes the latest value of every pending subscription while the socket takes it. */
  private writePending(): void {
    if (this.eventsOff || this.closed) return;
    this.q.writePending((sub) => {
      if (sub.alive) this.writeUpdate(sub);
    });
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
    if (maxArray === null || size <= maxArray) return true;
    const text = `reply of ${size} bytes exceeds EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`;
    this.sendError(ch.cid, ECA.TOLARGE, h, ext, text);
    return false;
  }

  private sendError(cid: number, eca: number, h: CaHeader, ext: boolean, text: string): void {
    this.reply.error(cid, eca, h, ext, text);
  }

  private cidForSid(h: CaHeader): number {
    if (!namesChannelBySid(h.command)) return NO_CHANNEL;
    return this.table.channel(requestSid(h))?.cid ?? NO_CHANNEL;
  }

  private setClientMinor(minor: number): void {
    this.clientMinor = minor;
    this.reply.extOk = minor >= 9;
  }

  private warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn({ user: this.user, host: this.host }, `CA request refused: ${msg}`);
  }
}
