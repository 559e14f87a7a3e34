/**
 * Per-PV state of the server, one per served PV for as long as it is in the registry (what a
 * CREATE_CHAN finds by the name's bytes): the channels (for SERVER_DISCONN on removal), the
 * subscriptions (one Pv listener fans out to all of them) and the encoding cache, so an update is
 * encoded once per (generation, DBR type, count) and the same bytes are copied behind every
 * subscriber's header. Without subscriptions it holds no listener and no cached bytes.
 */
import type { Pv } from "../../pv/pv.ts";
import { dbrReplySize, encodeDbr, nativeDbrType } from "../codec/dbr-encode.ts";

/** An encoded DBR value ready to send (payload padded to 8), or the ECA status of a failure. */
export type Encoded = { payload: Uint8Array; count: number } | { error: number };

/** What a subscription needs from its circuit: the server-wide fan-out calls `queueUpdate`. */
export interface SubscriptionSink {
  queueUpdate(sub: FanoutSubscription): void;
}

/**
 * A subscription as seen by the fan-out: mask filter and the circuit to deliver to, plus the links
 * of its PvEntry's list (owned by PvEntry: clients add and cancel subscriptions by the million, so
 * the list is intrusive, with no hash set to grow, shrink and rehash).
 */
export interface FanoutSubscription {
  readonly mask: number;
  readonly sink: SubscriptionSink;
  fanPrev: FanoutSubscription | null;
  /** Kept when unlinked, so a fan-out walking the list can step past a removed subscription. */
  fanNext: FanoutSubscription | null;
  fanLinked: boolean;
}

/** A holder of a channel on this PV, told when the PV disappears. */
export interface FanoutChannel {
  pvRemoved(): void;
}

const zeroCache = new Map<number, Uint8Array>();

/**
 * A zero-filled payload of the size a reply of this type/count would have (for failed gets: a
 * count-0 request that fails answers count 0 with the metadata part zeroed, as rsrv does).
 */
export function zeroPayload(dbrType: number, count: number): Uint8Array {
  const size = dbrReplySize(dbrType, count);
  let z = zeroCache.get(size);
  if (z === undefined) {
    z = new Uint8Array(size);
    // Only small ones are worth keeping; big zero blocks are rare (failed huge gets).
    if (size <= 65536) zeroCache.set(size, z);
  }
  return z;
}

// Distinct (type, count) encodings kept per update beyond the first; more are encoded uncached,
// so a client asking for many odd counts of a big array cannot make the cache hold many copies.
const MAX_EXTRA_ENCODINGS = 8;

/**
 * How many PVs of a server have at least one channel (CaServer.stats' `pvsInUse`). An object the
 * entries count into rather than a callback they call: the warm-up's entries count into one of
 * their own, and a callback of its own would be a different function at the same call site, which
 * the code compiled during the warm-up would have inlined and then thrown away once the warm-up's
 * callback was collected (docs/ca-server.md, "Warm-up at boot").
 */
export class InUseCount {
  n = 0;
}

/** Server-side companion of one served Pv. */
export class PvEntry {
  // The channels on this PV: usually one (a connect storm opens 10,000 PVs once each), so the first
  // is kept in a field and a Set is allocated only for the second.
  private channel0: FanoutChannel | null = null;
  private moreChannels: Set<FanoutChannel> | null = null;
  // The subscriptions, oldest first (an intrusive list: no allocation per subscription).
  private subHead: FanoutSubscription | null = null;
  private subTail: FanoutSubscription | null = null;
  private subCount = 0;
  // The Pv listener, made with the entry's first subscription and kept: a closure and its scope
  // per entry (~110 B) for the many PVs nobody monitors cost ~1.2 MB of heap with 11,000 PVs
  // (docs/benchmarks.md, "Product-path memory").
  private listener: ((mask: number) => void) | null = null;
  private unlisten: (() => void) | null = null;
  private cacheGeneration = -1;
  // One-slot cache for the common case (every subscriber asks for the same type/count) …
  private key0 = -1;
  private enc0: Encoded | null = null;
  // … and a small map for the others.
  private more: Map<number, Encoded> | null = null;

  /**
   * The PV's native DBR type (CREATE_CHAN's reply), found once: a kind that came from a plugin
   * process is a string made by the IPC decoder, and a switch on it in every CREATE_CHAN made the
   * optimised code (compiled on the warm-up's literal kinds) bail out on the first real one.
   */
  readonly nativeType: number;

  constructor(
    readonly pv: Pv,
    /** Counts this PV while it has channels (+1 with its first, −1 with its last). */
    private readonly inUse: InUseCount,
  ) {
    this.nativeType = nativeDbrType(pv.kind);
  }

  /**
   * Encodes the PV's current state. While subscriptions exist the result is cached until the PV's
   * next post or metadata change, so all subscribers share one encoding per update.
   */
  encode(dbrType: number, count: number): Encoded {
    const pv = this.pv;
    if (this.subCount === 0) return encodeDbr(pv, dbrType, count);
    if (pv.generation !== this.cacheGeneration) {
      this.cacheGeneration = pv.generation;
      this.key0 = -1;
      this.enc0 = null;
      this.more?.clear();
    }
    // count < 2^28 (MAX_PV_COUNT bounds requests) and dbrType < 64: the key is an exact integer.
    const key = count * 64 + dbrType;
    if (key === this.key0 && this.enc0 !== null) return this.enc0;
    let e = this.more?.get(key);
    if (e !== undefined) return e;
    e = encodeDbr(pv, dbrType, count);
    if (this.enc0 === null) {
      this.key0 = key;
      this.enc0 = e;
    } else {
      this.more ??= new Map();
      if (this.more.size < MAX_EXTRA_ENCODINGS) this.more.set(key, e);
    }
    return e;
  }

  /** Adds a subscription; the Pv listener is attached with the first one. */
  addSubscription(sub: FanoutSubscription): void {
    if (sub.fanLinked) return;
    sub.fanLinked = true;
    sub.fanPrev = this.subTail;
    sub.fanNext = null;
    if (this.subTail === null) this.subHead = sub;
    else this.subTail.fanNext = sub;
    this.subTail = sub;
    this.subCount++;
    if (this.unlisten === null) {
      this.listener ??= (mask: number): void => this.fire(mask);
      this.unlisten = this.pv.subscribe(this.listener);
    }
  }

  /** Removes a subscription; detaches from the Pv when none are left. */
  removeSubscription(sub: FanoutSubscription): void {
    if (!sub.fanLinked) return;
    sub.fanLinked = false;
    const prev = sub.fanPrev;
    const next = sub.fanNext;
    if (prev === null) this.subHead = next;
    else prev.fanNext = next;
    if (next === null) this.subTail = prev;
    else next.fanPrev = prev;
    // fanNext stays: a fire() in progress may stand on `sub` (see fire).
    sub.fanPrev = null;
    this.subCount--;
    if (this.subCount === 0) this.detach();
  }

  /** Number of subscriptions (diagnostics). */
  get subscriptionCount(): number {
    return this.subCount;
  }

  /** Adds a channel (told by pvRemoved when the PV goes). */
  addChannel(ch: FanoutChannel): void {
    if (this.channel0 === null && (this.moreChannels === null || this.moreChannels.size === 0)) {
      this.channel0 = ch;
      this.inUse.n++;
      return;
    }
    this.moreChannels ??= new Set();
    this.moreChannels.add(ch);
  }

  /** Number of channels open on this PV. */
  get channelCount(): number {
    return (this.channel0 === null ? 0 : 1) + (this.moreChannels?.size ?? 0);
  }

  /** Removes a channel. */
  removeChannel(ch: FanoutChannel): void {
    if (this.channel0 === ch) this.channel0 = null;
    else if (this.moreChannels === null || !this.moreChannels.delete(ch)) return;
    if (this.channelCount === 0) {
      this.detach();
      this.inUse.n--;
    }
  }

  /** The PV left the registry: every channel disconnects (each removes itself). */
  pvRemoved(): void {
    const all = this.channel0 === null ? [] : [this.channel0];
    if (this.moreChannels !== null) all.push(...this.moreChannels);
    for (const ch of all) ch.pvRemoved();
  }

  // No listener and no cached bytes while nobody subscribes.
  private detach(): void {
    if (this.unlisten !== null) {
      this.unlisten();
      this.unlisten = null;
    }
    this.enc0 = null;
    this.key0 = -1;
    this.more = null;
    this.cacheGeneration = -1;
  }

  // A delivery may close a circuit (a failed flush) and so unlink subscriptions mid-walk: an
  // unlinked one keeps its fanNext, which leads (through other unlinked ones, since links are only
  // appended at the tail) to the next linked subscription. Subscription objects are never
  // relinked, so the walk visits each subscription linked at its start at most once.
  private fire(mask: number): void {
    let sub = this.subHead;
    while (sub !== null) {
      if (sub.fanLinked && (sub.mask & mask) !== 0) sub.sink.queueUpdate(sub);
      sub = sub.fanNext;
    }
  }
}
