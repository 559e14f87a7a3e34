/**
 * A circuit's channels and subscriptions: the protocol state one CREATE_CHAN and one EVENT_ADD
 * create. The circuit owns them; the server-wide fan-out (fanout.ts) sees them through
 * FanoutChannel / FanoutSubscription.
 */
import type { Pv } from "../../pv/pv.ts";
import { CMD } from "../codec/constants.ts";
import type { CaHeader } from "../codec/header.ts";
import type { FanoutChannel, FanoutSubscription, PvEntry, SubscriptionSink } from "./fanout.ts";
import { IdTable } from "./id-table.ts";

/** What a channel tells its circuit. */
export interface ChannelOwner {
  /** The channel's PV left the registry: SERVER_DISCONN and forget the channel. */
  disconnectChannel(ch: Channel): void;
}

/** One channel: a client's CID bound to our SID and a served PV. */
export class Channel implements FanoutChannel {
  /**
   * Subscriptions on this channel, oldest first: an intrusive list through Subscription.chPrev /
   * chNext (EVENT_ADD and EVENT_CANCEL come by the million; no per-channel map to grow and shrink).
   */
  subHead: Subscription | null = null;
  subTail: Subscription | null = null;
  alive = true;
  /** Writes started on this channel and not settled yet (they complete in order). */
  writes = 0;
  /** Of those, the ones whose value was not visible when they started (a handler still deciding). */
  invisibleWrites = 0;
  /** Requests that must wait for those writes, in arrival order; null when none wait. */
  held: HeldRequest[] | null = null;
  /** ACCESS_RIGHTS bits last sent for this channel (read 1, write 2). */
  rights = 0;

  constructor(
    private readonly owner: ChannelOwner,
    readonly cid: number,
    readonly sid: number,
    readonly pv: Pv,
    readonly entry: PvEntry,
  ) {}

  pvRemoved(): void {
    this.owner.disconnectChannel(this);
  }

  /**
   * Whether a request must wait for the pending writes: everything after a waiting request waits
   * (order). A write never waits for a write: writes on one channel overlap and complete in order
   * (Pv.beginWrite). Every other request waits while a pending write's value is not visible yet,
   * so it sees the write's outcome; once the handler posted (a trigger posts first, then works),
   * reads and subscriptions need not wait.
   */
  mustWait(command: number): boolean {
    if (this.held !== null) return true;
    if (this.invisibleWrites === 0) return false;
    return command !== CMD.WRITE && command !== CMD.WRITE_NOTIFY;
  }
}

/** A request kept until its channel's pending write settles: copies of header and payload. */
export interface HeldRequest {
  readonly h: CaHeader;
  readonly ext: boolean;
  readonly payload: Uint8Array;
}

/** One EVENT_ADD: what to send (type, count) on which events (mask), and where. */
export class Subscription implements FanoutSubscription {
  /** True while its latest value is owed to the client (coalesced in the send queue). */
  pending = false;
  alive = true;
  // Links of the channel's list (ChannelTable) and of the PvEntry's (fanout.ts).
  chPrev: Subscription | null = null;
  /** Kept when unlinked, so a walk of the channel's list can step past a removed subscription. */
  chNext: Subscription | null = null;
  fanPrev: FanoutSubscription | null = null;
  fanNext: FanoutSubscription | null = null;
  fanLinked = false;

  constructor(
    readonly id: number,
    readonly channel: Channel,
    readonly dbrType: number,
    readonly count: number,
    readonly mask: number,
    readonly sink: SubscriptionSink,
  ) {}
}

/**
 * A circuit's channels by SID and subscriptions by id, with the SID allocator. Releasing a channel
 * releases its subscriptions; `subGone` tells the owner (to forget a coalesced update).
 */
export class ChannelTable {
  private readonly channels = new Map<number, Channel>(); // by SID
  private readonly subs = new IdTable<Subscription>(); // by subscription ID
  private nextSid = 1;
  private sidWrapped = false;

  constructor(private readonly subGone: (sub: Subscription) => void) {}

  get channelCount(): number {
    return this.channels.size;
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** Every open channel. */
  all(): IterableIterator<Channel> {
    return this.channels.values();
  }

  channel(sid: number): Channel | undefined {
    return this.channels.get(sid);
  }

  subscription(id: number): Subscription | undefined {
    return this.subs.get(id);
  }

  /** A new channel on `entry`'s PV, registered with the entry (for SERVER_DISCONN). */
  open(owner: ChannelOwner, cid: number, entry: PvEntry): Channel {
    const ch = new Channel(owner, cid, this.allocSid(), entry.pv, entry);
    entry.addChannel(ch);
    this.channels.set(ch.sid, ch);
    return ch;
  }

  /** Forgets a channel and its subscriptions. */
  close(ch: Channel): void {
    this.channels.delete(ch.sid);
    this.release(ch);
  }

  /** Forgets every channel (the circuit closed). */
  closeAll(): void {
    for (const ch of this.channels.values()) this.release(ch);
    this.channels.clear();
    this.subs.clear();
  }

  addSubscription(sub: Subscription): void {
    const ch = sub.channel;
    this.subs.set(sub.id, sub);
    sub.chPrev = ch.subTail;
    if (ch.subTail === null) ch.subHead = sub;
    else ch.subTail.chNext = sub;
    ch.subTail = sub;
    ch.entry.addSubscription(sub);
  }

  removeSubscription(sub: Subscription): void {
    if (!sub.alive) return;
    sub.alive = false;
    this.subs.delete(sub.id);
    unlinkFromChannel(sub);
    sub.channel.entry.removeSubscription(sub);
    this.subGone(sub);
  }

  private release(ch: Channel): void {
    ch.alive = false;
    for (let sub = ch.subHead; sub !== null; sub = sub.chNext) {
      sub.alive = false;
      this.subs.delete(sub.id);
      sub.chPrev = null;
      ch.entry.removeSubscription(sub);
      this.subGone(sub);
    }
    ch.subHead = null;
    ch.subTail = null;
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
}

// Takes `sub` out of its channel's list; its chNext stays (a walk standing on it goes on from there).
function unlinkFromChannel(sub: Subscription): void {
  const ch = sub.channel;
  const prev = sub.chPrev;
  const next = sub.chNext;
  if (prev === null) ch.subHead = next;
  else prev.chNext = next;
  if (next === null) ch.subTail = prev;
  else next.chPrev = prev;
  sub.chPrev = null;
}
