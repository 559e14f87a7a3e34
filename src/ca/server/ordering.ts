/**
 * Per-channel order and write backpressure of one circuit (docs/ca-server.md, "Ordering and
 * backpressure"). Writes on a channel overlap and complete in order; any other request that
 * arrives on the channel while a write is pending waits here, copied, and runs in arrival order
 * once the writes before it settled, so a read, a subscription's first update or a later request
 * sees those writes' outcome. Requests on other channels do not wait. When the circuit holds too many waiting requests (or too many bytes of them), it stops
 * reading its socket until they drain: TCP backpressure, as rsrv does, instead of refusals.
 */
import { CMD } from "../codec/constants.ts";
import type { CaHeader } from "../codec/header.ts";
import type { Channel, HeldRequest } from "./channel.ts";

// Bytes of waiting requests (mostly array writes) past which reading stops; one larger request
// is still taken, reading just stops after it.
const HELD_BYTES_HIGH = 16 * 1024 * 1024;

export class WaitingRequests {
  /** Requests waiting on this circuit's channels. */
  count = 0;
  /** Their payload bytes. */
  bytes = 0;
  /** Channels with a write pending. */
  writing = 0;

  constructor(
    /** Waiting requests plus pending writes past which the circuit stops reading. */
    private readonly high: number,
  ) {}

  /** Whether reading must stop now. */
  get full(): boolean {
    return this.count + this.writing >= this.high || this.bytes > HELD_BYTES_HIGH;
  }

  /** Whether reading may resume (half the bound: no pause/resume flapping on every write). */
  get drained(): boolean {
    return this.count + this.writing <= this.high >> 1 && this.bytes <= HELD_BYTES_HIGH >> 1;
  }

  /** Keeps a copy of a request that must wait for `ch`'s pending write. */
  hold(ch: Channel, h: CaHeader, bytes: Uint8Array, off: number, ext: boolean): void {
    const payload = bytes.slice(off, off + h.payloadSize);
    const r: HeldRequest = { h: { ...h }, ext, payload };
    if (ch.held === null) ch.held = [r];
    else ch.held.push(r);
    this.count++;
    this.bytes += payload.length;
  }

  /** A write on `ch` started (`visible`: its value is posted already). */
  started(ch: Channel, visible: boolean): void {
    ch.writes++;
    if (!visible) ch.invisibleWrites++;
    this.writing++;
  }

  /** A write on `ch` settled (`visible` as it was given to `started`). */
  settled(ch: Channel, visible: boolean): void {
    if (ch.writes === 0) return;
    ch.writes--;
    if (!visible) ch.invisibleWrites--;
    this.writing--;
  }

  /** The next request of `ch` that may run now, taken off its queue; null when none may. */
  next(ch: Channel): HeldRequest | null {
    const held = ch.held;
    if (held === null) return null;
    const r = held[0] as HeldRequest;
    const isWrite = r.h.command === CMD.WRITE || r.h.command === CMD.WRITE_NOTIFY;
    if (!isWrite && ch.invisibleWrites > 0) return null;
    held.shift();
    if (held.length === 0) ch.held = null;
    this.count--;
    this.bytes -= r.payload.length;
    return r;
  }

  /** `ch` closed: its waiting requests are dropped (nothing is answered on a closed channel). */
  forget(ch: Channel): void {
    if (ch.held !== null) {
      for (const r of ch.held) this.bytes -= r.payload.length;
      this.count -= ch.held.length;
      ch.held = null;
    }
    // Its pending writes still complete in the PV, but nothing is answered for them any more.
    this.writing -= ch.writes;
    ch.writes = 0;
    ch.invisibleWrites = 0;
  }
}
