/**
 * Per-PV state the server keeps while at least one channel is open on a PV: the channels (for
 * SERVER_DISCONN on removal), the subscriptions (one Pv listener fans out to all of them) and the
 * encoding cache, so an update is encoded once per (generation, DBR type, count) and the same bytes
 * are copied behind every subscriber's header.
 */
import type { Pv } from "../../pv/pv.ts";
import { dbrPayloadSize, encodeDbr } from "../codec/dbr.ts";
import { pad8 } from "../codec/header.ts";

/** An encoded DBR value ready to send (payload padded to 8), or the ECA status of a failure. */
export type Encoded = { payload: Uint8Array; count: number } | { error: number };

/** What a subscription needs from its circuit: the server-wide fan-out calls `queueUpdate`. */
export interface SubscriptionSink {
  queueUpdate(sub: FanoutSubscription): void;
}

/** A subscription as seen by the fan-out: mask filter and the circuit to deliver to. */
export interface FanoutSubscription {
  readonly mask: number;
  readonly sink: SubscriptionSink;
}

/** A holder of a channel on this PV, told when the PV disappears. */
export interface FanoutChannel {
  pvRemoved(): void;
}

const zeroCache = new Map<number, Uint8Array>();

/** A zero-filled payload of the size a reply of this type/count would have (for failed gets). */
export function zeroPayload(dbrType: number, count: number): Uint8Array {
  const size = pad8(Math.max(8, dbrPayloadSize(dbrType, Math.max(1, count))));
  let z = zeroCache.get(size);
  if (z === undefined) {
    z = new Uint8Array(size);
    // Only small ones are worth keeping; big zero blocks are rare (failed huge gets).
    if (size <= 65536) zeroCache.set(size, z);
  }
  return z;
}

/** Server-side companion of one Pv while clients use it. */
export class PvEntry {
  readonly channels = new Set<FanoutChannel>();
  private readonly subs = new Set<FanoutSubscription>();
  private unlisten: (() => void) | null = null;
  private cacheGeneration = -1;
  private readonly cache = new Map<number, Encoded>();

  constructor(
    readonly pv: Pv,
    private readonly onEmpty: (entry: PvEntry) => void,
  ) {}

  /** Encodes the PV's current state (cached until the PV's next post or metadata change). */
  encode(dbrType: number, count: number): Encoded {
    const pv = this.pv;
    if (pv.generation !== this.cacheGeneration) {
      this.cache.clear();
      this.cacheGeneration = pv.generation;
    }
    // count < 2^28 (MAX_PV_COUNT bounds requests) and dbrType < 64: the key is an exact integer.
    const key = count * 64 + dbrType;
    let e = this.cache.get(key);
    if (e === undefined) {
      e = encodeDbr(pv, dbrType, count);
      this.cache.set(key, e);
    }
    return e;
  }

  /** Adds a subscription; the Pv listener is attached with the first one. */
  addSubscription(sub: FanoutSubscription): void {
    this.subs.add(sub);
    if (this.unlisten === null) this.unlisten = this.pv.subscribe((mask) => this.fire(mask));
  }

  /** Removes a subscription; detaches from the Pv when none are left. */
  removeSubscription(sub: FanoutSubscription): void {
    this.subs.delete(sub);
    if (this.subs.size === 0 && this.unlisten !== null) {
      this.unlisten();
      this.unlisten = null;
    }
  }

  /** Number of subscriptions (diagnostics). */
  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** Removes a channel; the entry is dropped by its owner once unused. */
  removeChannel(ch: FanoutChannel): void {
    this.channels.delete(ch);
    if (this.channels.size === 0) {
      if (this.unlisten !== null) {
        this.unlisten();
        this.unlisten = null;
      }
      this.cache.clear();
      this.onEmpty(this);
    }
  }

  /** The PV left the registry: every channel disconnects (each removes itself). */
  pvRemoved(): void {
    for (const ch of [...this.channels]) ch.pvRemoved();
  }

  private fire(mask: number): void {
    for (const sub of this.subs) {
      if ((sub.mask & mask) !== 0) sub.sink.queueUpdate(sub);
    }
  }
}
