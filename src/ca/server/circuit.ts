/**
 * One TCP virtual circuit: protocol state and dispatch. Parses client requests (the codec's
 * MessageReader and request readers), keeps the circuit's channels and subscriptions (channel.ts)
 * and answers through its send queue (send-queue.ts: buffer, backlog, coalescing, flush).
 */
import type { Socket } from "bun";
import type { Logger } from "pino";
import { CMD, CMD_NAME, ECA } from "../codec/constants.ts";
import type { CaHeader } from "../codec/header.ts";
import {
  encodeClearChannelReply,
  encodeEcho,
  encodeReadSync,
  encodeServerDisconn,
  encodeVersion,
} from "../codec/messages.ts";
import {
  createChanMinor,
  namesChannelBySid,
  requestSid,
  versionMinor,
  versionPriority,
} from "../codec/requests.ts";
import { MessageReader, READ } from "../codec/stream.ts";
import { CircuitAccess } from "./access.ts";
import { type Channel, ChannelTable, type Subscription } from "./channel.ts";
import { createChan, recheckAccess, tcpSearch } from "./channel-open.ts";
import { ChannelRequests } from "./channel-requests.ts";
import type { FanoutSubscription, SubscriptionSink } from "./fanout.ts";
import type { CircuitHost, CircuitSocketData } from "./host.ts";
import { WaitingRequests } from "./ordering.ts";
import { Replies } from "./replies.ts";
import { FLUSH_NOW_BYTES, SendQueue } from "./send-queue.ts";

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
  private readonly warned = new Set<string>();
  private readonly chan: ChannelRequests;
  private readonly waiting: WaitingRequests;
  // Reading stops while too many requests wait behind writes (readHeld) or while the client does
  // not take our replies (outPressure); the socket is paused while either holds.
  private readHeld = false;
  private outPressure = false;
  private socketPaused = false;
  // Shared with ChannelRequests (the ChannelCircuit it sees).
  readonly q: SendQueue<Subscription>;
  readonly reply: Replies;
  readonly table: ChannelTable;
  readonly log: Logger;
  readonly access: CircuitAccess;

  constructor(
    private readonly socket: CaSocket,
    readonly srv: CircuitHost,
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
      (high) => {
        this.outPressure = high;
        this.updateSocket();
      },
    );
    this.waiting = new WaitingRequests(srv.config.maxPendingWritesPerCircuit);
    this.reply = new Replies(this.q);
    this.table = new ChannelTable((sub) => this.q.unmark(sub));
    this.access = new CircuitAccess(srv.access, this);
    this.chan = new ChannelRequests(this, srv.config);
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
    this.reader.push(chunk);
    this.processBuffered();
  }

  // Handles the whole messages the reader holds, unless reading is held (backpressure): then the
  // rest stays in the reader, copied out of the socket's chunk, until the circuit drains.
  private processBuffered(): void {
    const reader = this.reader;
    // reader.read() fills one reused header (no per-message objects on this hot path); handlers
    // must copy what they keep beyond the call (see ChannelRequests.write, WaitingRequests.hold).
    const h = reader.header;
    for (;;) {
      if (this.readHeld) {
        reader.retain();
        break;
      }
      const r = reader.read();
      if (r === READ.NONE) break;
      if (r !== READ.MESSAGE) {
        if (this.framingError(r, h, reader.extended)) return;
        continue;
      }
      this.srv.counters.requests++;
      // Guarded inline, not through guarded(): a closure per message is an allocation per request.
      try {
        this.dispatch(h, reader.bytes, reader.payloadOffset, reader.extended);
      } catch (e) {
        this.handlerFailed(h, e);
      }
      if (this.closed) return;
      if (this.q.len >= FLUSH_NOW_BYTES) {
        this.flush();
        if (this.closed) return;
      }
    }
    this.flush();
  }

  // A bug handling one request must not take the server down; the circuit is suspect though.
  private guarded(h: CaHeader, run: () => void): void {
    try {
      run();
    } catch (e) {
      this.handlerFailed(h, e);
    }
  }

  /** A bug handling request `h`: counted, logged, and the circuit dropped. */
  failed(h: CaHeader, e: unknown): void {
    this.handlerFailed(h, e);
  }

  private handlerFailed(h: CaHeader, e: unknown): void {
    this.srv.counters.internalErrors++;
    this.log.error({ err: e, command: h.command }, "CA request handler failed");
    this.drop("internal error");
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
    this.shutdown();
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
    this.waiting.forget(ch);
    this.table.close(ch);
    if (this.closed) return;
    this.q.append(encodeServerDisconn(ch.cid));
    this.scheduleFlush();
  }

  scheduleFlush(): void {
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
      case CMD.READ_NOTIFY:
      case CMD.READ:
      case CMD.WRITE:
      case CMD.WRITE_NOTIFY:
      case CMD.EVENT_ADD:
      case CMD.EVENT_CANCEL:
      case CMD.CLEAR_CHANNEL:
        this.onChannelRequest(h, bytes, off, ext);
        return;
      case CMD.SEARCH:
        tcpSearch(this, h, bytes.subarray(off, end));
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

  // The name is read in place from `bytes` at `off` (channel-open.ts).
  private onCreateChan(h: CaHeader, bytes: Uint8Array, off: number): void {
    if (h.payloadSize <= 1) return; // rsrv ignores empty names silently
    const minor = createChanMinor(h);
    if (!this.versionSeen && minor >= 4 && minor <= 0xffff) this.setClientMinor(minor);
    if (createChan(this, h, bytes, off)) this.anyChannelCreated = true;
  }

  /** Access rights may have changed: re-send those that did (channel-open.ts). */
  recheckAccess(): void {
    if (!this.closed) recheckAccess(this);
  }

  // A request about one channel: run now, or wait behind the channel's pending write.
  private onChannelRequest(h: CaHeader, bytes: Uint8Array, off: number, ext: boolean): void {
    const ch = this.table.channel(requestSid(h));
    if (ch === undefined) {
      // A stale SID (e.g. just disconnected) is ignored: libca already gave up on the channel.
      if (h.command === CMD.EVENT_CANCEL) this.chan.eventCancel(h, ext);
      return;
    }
    if (ch.mustWait(h.command)) {
      this.waiting.hold(ch, h, bytes, off, ext);
      this.checkReading();
      return;
    }
    this.runChannelRequest(ch, h, bytes, off, ext);
  }

  private runChannelRequest(
    ch: Channel,
    h: CaHeader,
    bytes: Uint8Array,
    off: number,
    ext: boolean,
  ): void {
    switch (h.command) {
      case CMD.READ_NOTIFY:
        this.chan.read(ch, h, ext, true);
        return;
      case CMD.READ:
        this.chan.read(ch, h, ext, false);
        return;
      case CMD.WRITE:
      case CMD.WRITE_NOTIFY:
        this.chan.write(ch, h, bytes, off, ext, h.command === CMD.WRITE_NOTIFY);
        return;
      case CMD.EVENT_ADD:
        this.chan.eventAdd(ch, h, bytes, off, ext);
        return;
      case CMD.EVENT_CANCEL:
        this.chan.eventCancel(h, ext);
        return;
      default: // CLEAR_CHANNEL
        this.waiting.forget(ch);
        this.table.close(ch);
        this.q.append(encodeClearChannelReply(h));
    }
  }

  /** A write on `ch` is pending: later reads on it wait (ChannelRequests calls this). */
  writeStarted(ch: Channel, visible: boolean): void {
    this.waiting.started(ch, visible);
    this.checkReading();
  }

  /** A write on `ch` settled and was answered: run what waited behind it, in order. */
  writeSettled(ch: Channel, visible: boolean): void {
    this.waiting.settled(ch, visible);
    for (;;) {
      const r = this.waiting.next(ch);
      if (r === null) break;
      this.guarded(r.h, () => this.runChannelRequest(ch, r.h, r.payload, 0, r.ext));
      if (this.closed || !ch.alive) break;
    }
    if (this.closed) return;
    this.scheduleFlush();
    this.checkReading();
  }

  // Holds or resumes reading after the count of waiting requests changed.
  private checkReading(): void {
    if (!this.readHeld && this.waiting.full) {
      this.readHeld = true;
      this.updateSocket();
    } else if (this.readHeld && this.waiting.drained) {
      this.readHeld = false;
      this.updateSocket();
      // What arrived before the pause is in the reader already.
      this.processBuffered();
    }
  }

  private updateSocket(): void {
    const pause = this.readHeld || this.outPressure;
    if (pause === this.socketPaused || this.closed) return;
    this.socketPaused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
  }

  // ---- replies ---------------------------------------------------------------------------------

  private writeUpdate(sub: Subscription): void {
    if (this.reply.update(sub)) this.srv.counters.updatesSent++;
    else this.warnOnce("16k", "monitor update too large for a pre-3.14 client");
  }

  /** Writes the latest value of every pending subscription while the socket takes it. */
  private writePending(): void {
    if (this.eventsOff || this.closed) return;
    this.q.writePending((sub) => {
      if (sub.alive) this.writeUpdate(sub);
    });
  }

  sendError(cid: number, eca: number, h: CaHeader, ext: boolean, text: string): void {
    this.reply.error(cid, eca, h, ext, text);
  }

  cidForSid(h: CaHeader): number {
    if (!namesChannelBySid(h.command)) return NO_CHANNEL;
    return this.table.channel(requestSid(h))?.cid ?? NO_CHANNEL;
  }

  private setClientMinor(minor: number): void {
    this.clientMinor = minor;
    this.reply.extOk = minor >= 9;
  }

  warnOnce(key: string, msg: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn({ user: this.user, host: this.host }, `CA request refused: ${msg}`);
  }
}
