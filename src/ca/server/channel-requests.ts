/**
 * The requests about one channel — READ, READ_NOTIFY, WRITE, WRITE_NOTIFY, EVENT_ADD,
 * EVENT_CANCEL — checked and answered for a circuit. The circuit keeps the connection (version,
 * names, channel creation, flow control); this file keeps what one channel's requests mean.
 */
import type { Logger } from "pino";
import { DBE, type WriteContext } from "../../pv/types.ts";
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
import { decodeWrite, startWrite } from "./writes.ts";

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
}

const NO_READ_ACCESS = { error: ECA.NORDACCESS } as const;

export class ChannelRequests {
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
   * WRITE / WRITE_NOTIFY on `ch`. A refusal is answered at once; otherwise the write starts (after
   * earlier ones on the PV, which it completes after) and the circuit is told when it settles, so
   * the channel's waiting requests run after it, in order.
   */
  write(ch: Channel, h: CaHeader, payload: Uint8Array, ext: boolean, notify: boolean): void {
    if (!(ch.rights & ACCESS.WRITE) && ch.pv.writable) {
      // Refused by access security, as rsrv does before looking at the value; decoded only so
      // the audit trail shows what was attempted.
      const tried = decodeWrite(ch.pv, h, payload, notify);
      const value = "error" in tried ? undefined : tried.value;
      this.c.access.record(ch.pv, value, ch.pv.value, "denied", "no write access");
      this.writeDone(ch, h, ext, notify, ECA.NOWTACCESS, `write access denied: ${ch.pv.name}`);
      return;
    }
    const dec = decodeWrite(ch.pv, h, payload, notify);
    if ("error" in dec) {
      this.c.log.debug({ pv: ch.pv.name, reason: dec.message }, "CA put refused");
      const result = dec.error === ECA.NOWTACCESS ? "denied" : "failed";
      this.c.access.record(ch.pv, undefined, ch.pv.value, result, dec.message);
      this.writeDone(ch, h, ext, notify, dec.error, dec.message);
      return;
    }
    // The request header is the reader's reused object: keep a copy for the async completion.
    const req: CaHeader = { ...h };
    const ctx: WriteContext = { user: this.c.user, host: this.c.host, peer: this.c.peer, notify };
    const generation = ch.pv.generation;
    // The value before the write (the channel's earlier writes have settled: they run one at a time).
    const old = ch.pv.value;
    let sync = true;
    let visible = false;
    const pending = startWrite(ch.pv, dec.value, ctx, (eca, reason) => {
      const result = reason === null ? "ok" : "failed";
      this.c.access.record(ch.pv, dec.value, old, result, reason ?? undefined);
      if (reason !== null) {
        const who = { pv: ch.pv.name, user: this.c.user, host: this.c.host, reason };
        this.c.log.info(who, "CA put failed");
      }
      if (this.c.closed || !ch.alive) return;
      this.writeDone(ch, req, ext, notify, eca, reason);
      if (!sync) this.c.writeSettled(ch, visible);
    });
    sync = false;
    if (pending) {
      // A handler that posted before answering made the value visible: reads need not wait.
      visible = ch.pv.generation !== generation;
      this.c.writeStarted(ch, visible);
    }
  }

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
