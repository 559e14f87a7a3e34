/**
 * The requests about one channel — READ, READ_NOTIFY, WRITE, WRITE_NOTIFY, EVENT_ADD,
 * EVENT_CANCEL — checked and answered for a circuit. The circuit keeps the connection (version,
 * names, channel creation, flow control); this file keeps what one channel's requests mean.
 */
import type { Logger } from "pino";
import { DBE, type PvValue, type PvWriteError, type WriteContext } from "../../pv/types.ts";
import { ACCESS, CMD, ECA } from "../codec/constants.ts";
import { dbrPayloadSize, isValidDbrType } from "../codec/dbr-layout.ts";
import type { CaHeader } from "../codec/header.ts";
import { eventAddMask, requestIoid, requestSid, subscriptionId } from "../codec/requests.ts";
import type { CircuitAccess } from "./access.ts";
import { type Channel, type ChannelTable, Subscription } from "./channel.ts";
import type { CaServerConfig } from "./config.ts";
import type { FanoutSubscription } from "./fanout.ts";
import type { CaCounters } from "./host.ts";
import type { Replies } from "./replies.ts";
import type { SendQueue } from "./send-queue.ts";
import {
  type ChannelWrite,
  decodeWrite,
  decodeWriteAt,
  releaseWrite,
  takeWrite,
  type WriteOwner,
  writeStatus,
} from "./writes.ts";

/** What channel requests need of their circuit. */
export interface ChannelCircuit {
  readonly srv: { readonly counters: CaCounters };
  readonly q: SendQueue<Subscription>;
  readonly reply: Replies;
  readonly table: ChannelTable;
  readonly log: Logger;
  readonly access: CircuitAccess;
  readonly closed: boolean;
  readonly user: string;
  readonly host: string;
  readonly peer: string;
  drop(reason: string): void;
  warnOnce(key: string, msg: string): void;
  scheduleFlush(): void;
  /** A write on `ch` is pending (`visible`: its value is posted already). */
  writeStarted(ch: Channel, visible: boolean): void;
  /** A pending write on `ch` settled and was answered: run what waits behind it. */
  writeSettled(ch: Channel, visible: boolean): void;
  queueUpdate(sub: FanoutSubscription): void;
  sendError(cid: number, eca: number, h: CaHeader, ext: boolean, text: string): void;
  cidForSid(h: CaHeader): number;
  /** A bug handling request `h` (counted, logged, the circuit dropped). */
  failed(h: CaHeader, e: unknown): void;
}

const NO_READ_ACCESS = { error: ECA.NORDACCESS } as const;

export class ChannelRequests implements WriteOwner {
  constructor(
    private readonly c: ChannelCircuit,
    private readonly config: CaServerConfig,
  ) {}

  /** READ / READ_NOTIFY on `ch`. */
  read(ch: Channel, h: CaHeader, ext: boolean, notify: boolean): void {
    if (!isValidDbrType(h.dataType)) {
      // rsrv drops the circuit silently for a type > 38.
      this.c.drop(`invalid DBR type ${h.dataType} in read`);
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    if (!(ch.rights & ACCESS.READ)) {
      // A denied reader gets no value: READ_NOTIFY carries ECA_NORDACCESS, the old READ an ERROR.
      if (notify) this.c.reply.read(h, ext, ch.cid, NO_READ_ACCESS, true);
      else this.c.sendError(ch.cid, ECA.NORDACCESS, h, ext, `read access denied: ${ch.pv.name}`);
      return;
    }
    if (
      notify &&
      h.count <= 1 &&
      this.scalarInPlaceAllowed() &&
      this.c.reply.readScalarInPlace(ch.pv, h)
    ) {
      return;
    }
    const enc = ch.entry.encode(h.dataType, h.count);
    if ("error" in enc && !notify) {
      const text = `get of ${ch.pv.name} as DBR type ${h.dataType} failed`;
      this.c.sendError(ch.cid, enc.error, h, ext, text);
      return;
    }
    if ("payload" in enc && !this.sizeAllowed(h, ext, ch, enc.payload.length)) return;
    this.c.reply.read(h, ext, ch.cid, enc, notify);
  }

  /**
   * WRITE / WRITE_NOTIFY on `ch`, its payload at bytes[off, off + h.payloadSize). A refusal is
   * answered at once; otherwise the write starts (after earlier ones on the PV, which it completes
   * after) and the circuit is told when it settles, so the channel's waiting requests run after
   * it, in order.
   */
  write(ch: Channel, h: CaHeader, bytes: Uint8Array, off: number, ext: boolean, notify: boolean) {
    const pv = ch.pv;
    if (!(ch.rights & ACCESS.WRITE) && pv.writable) {
      // Refused by access security, as rsrv does before looking at the value; decoded only so
      // the audit trail shows what was attempted.
      const tried = decodeWrite(pv, h, bytes.subarray(off, off + h.payloadSize), notify);
      const value = "error" in tried ? undefined : tried.value;
      this.c.access.record(pv, value, pv.value, "denied", "no write access");
      this.writeDone(ch, h, ext, notify, ECA.NOWTACCESS, `write access denied: ${pv.name}`);
      return;
    }
    const dec = decodeWriteAt(pv, h, bytes, off, notify);
    let value: PvValue;
    if (typeof dec === "number") value = dec;
    else if ("error" in dec) {
      this.c.log.debug({ pv: pv.name, reason: dec.message }, "CA put refused");
      const result = dec.error === ECA.NOWTACCESS ? "denied" : "failed";
      this.c.access.record(pv, undefined, pv.value, result, dec.message);
      this.writeDone(ch, h, ext, notify, dec.error, dec.message);
      return;
    } else value = dec.value;
    // The record copies the header: the reader reuses its own for the next message.
    const w = takeWrite(this, ch, h, ext, notify, value);
    const generation = pv.generation;
    if (pv.startWrite(value, this.writeContext(notify), w)) {
      w.sync = false;
      // A handler that posted before answering made the value visible: reads need not wait.
      w.visible = pv.generation !== generation;
      this.c.writeStarted(ch, w.visible);
    }
    // Otherwise the write completed inside startWrite and `w` is back in its pool.
  }

  /** A write's outcome (the PV's WriteWaiter, through the write's record). */
  writeCompleted(w: ChannelWrite, error: PvWriteError | null): void {
    const ch = w.ch as Channel;
    try {
      const reason = error === null ? null : error.message;
      this.c.access.record(
        ch.pv,
        w.value,
        w.old,
        reason === null ? "ok" : "failed",
        reason ?? undefined,
      );
      if (reason !== null) {
        const who = { pv: ch.pv.name, user: this.c.user, host: this.c.host, reason };
        this.c.log.info(who, "CA put failed");
      }
      if (!this.c.closed && ch.alive) {
        this.writeDone(ch, w.h, w.ext, w.notify, writeStatus(error), reason);
        if (!w.sync) this.c.writeSettled(ch, w.visible);
      }
    } catch (e) {
      // Called from the PV's write queue: a bug here must not stop the PV's later completions.
      this.c.failed(w.h, e);
    } finally {
      releaseWrite(w);
    }
  }

  // The context handed to the PV's handler: one per circuit and kind (the circuit's names are
  // fixed once it has a channel, as rsrv fixes them), not one per write.
  private writeContext(notify: boolean): WriteContext {
    const c = this.c;
    let ctx = notify ? this.ctxNotify : this.ctxPlain;
    if (ctx === null || ctx.user !== c.user || ctx.host !== c.host) {
      ctx = Object.freeze({ user: c.user, host: c.host, peer: c.peer, notify });
      if (notify) this.ctxNotify = ctx;
      else this.ctxPlain = ctx;
    }
    return ctx;
  }

  private ctxNotify: WriteContext | null = null;
  private ctxPlain: WriteContext | null = null;

  // A write's outcome: WRITE_NOTIFY answers always, a plain WRITE only with an ERROR on failure.
  private writeDone(
    ch: Channel,
    h: CaHeader,
    ext: boolean,
    notify: boolean,
    eca: number,
    reason: string | null,
  ): void {
    if (notify) this.c.reply.writeNotify(h.dataType, h.count, eca, requestIoid(h));
    else if (reason !== null) this.c.sendError(ch.cid, eca, h, ext, reason);
  }

  /** EVENT_ADD on `ch`: a subscription. */
  eventAdd(ch: Channel, h: CaHeader, bytes: Uint8Array, off: number, ext: boolean): void {
    if (!isValidDbrType(h.dataType)) {
      this.c.drop(`invalid DBR type ${h.dataType} in subscription`);
      return;
    }
    // libca always sends the 16-byte event block; a client that omits it gets VALUE|ALARM.
    let mask = eventAddMask(bytes, off, h.payloadSize);
    if (mask < 0) mask = DBE.VALUE | DBE.ALARM;
    // Unknown bits are ignored; a mask selecting nothing is refused, without dropping.
    mask &= DBE.VALUE | DBE.LOG | DBE.ALARM | DBE.PROPERTY;
    if (mask === 0) {
      this.c.sendError(ch.cid, ECA.BADMASK, h, ext, "subscription event mask selects no events");
      return;
    }
    if (!this.countAllowed(ch, h, ext)) return;
    const maxArray = this.config.maxArrayBytes;
    if (maxArray !== null && dbrPayloadSize(h.dataType, h.count || ch.pv.count) > maxArray) {
      const text = `subscription larger than EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`;
      this.c.sendError(ch.cid, ECA.TOLARGE, h, ext, text);
      return;
    }
    const id = subscriptionId(h);
    const old = this.c.table.subscription(id);
    if (old !== undefined) this.c.table.removeSubscription(old);
    const maxSubs = this.config.maxSubscriptionsPerCircuit;
    if (this.c.table.subscriptionCount >= maxSubs) {
      this.c.warnOnce("subs", `subscription limit ${maxSubs} per circuit reached`);
      this.c.sendError(ch.cid, ECA.ALLOCMEM, h, ext, "too many subscriptions on this circuit");
      return;
    }
    const sub = new Subscription(id, ch, h.dataType, h.count, mask, this.c);
    this.c.table.addSubscription(sub);
    // The first update is mandatory and immediate, whatever the mask.
    this.c.queueUpdate(sub);
  }

  /** EVENT_CANCEL. */
  eventCancel(h: CaHeader, ext: boolean): void {
    const sid = requestSid(h);
    const sub = this.c.table.subscription(subscriptionId(h));
    if (sub === undefined || sub.channel.sid !== sid) {
      // rsrv also drops the circuit here; an error is enough to tell the client.
      this.c.sendError(this.c.cidForSid(h), ECA.BADMONID, h, ext, "unknown subscription");
      return;
    }
    this.c.table.removeSubscription(sub);
    // The cancel ack (command 1, no payload, the original type and count clamped to the standard
    // header) written in place: clients cancel by the thousand (acctst: 5 million).
    const count = sub.count >= 0xffff ? 0xfffe : sub.count;
    this.c.q.appendHeader(CMD.EVENT_ADD, sub.dbrType, count, sid, sub.id, false);
  }

  // A request for more elements than the channel has gets ECA_BADCOUNT (the circuit continues).
  private countAllowed(ch: Channel, h: CaHeader, ext: boolean): boolean {
    if (h.count <= ch.pv.count) return true;
    const text = `count ${h.count} exceeds the channel's ${ch.pv.count} elements`;
    this.c.sendError(ch.cid, ECA.BADCOUNT, h, ext, text);
    return false;
  }

  private sizeAllowed(h: CaHeader, ext: boolean, ch: Channel, size: number): boolean {
    const maxArray = this.config.maxArrayBytes;
    if (maxArray === null || size <= maxArray) return true;
    const text = `reply of ${size} bytes exceeds EPICS_CA_MAX_ARRAY_BYTES=${maxArray}`;
    this.c.sendError(ch.cid, ECA.TOLARGE, h, ext, text);
    return false;
  }

  // The in-place scalar reply carries 8 bytes: only when EPICS_CA_MAX_ARRAY_BYTES allows them.
  private scalarInPlaceAllowed(): boolean {
    const maxArray = this.config.maxArrayBytes;
    return maxArray === null || maxArray >= 8;
  }
}
