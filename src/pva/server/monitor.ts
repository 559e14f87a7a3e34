/**
 * A MONITOR subscription (docs/pva.md §Monitor): a bounded queue of updates per subscription. A
 * new update joins the queue until it holds `queueSize`; after that it is squashed into the newest
 * queued one (changed bits united, latest value kept), so a slow client always gets the latest
 * value and memory stays bounded. With `pipeline=true` an update is sent only while the client's
 * window is open; its ACKs reopen it.
 */
import type { Pv } from "../../pv/pv.ts";
import { DBE } from "../../pv/types.ts";
import type { BitSet } from "../codec/bitset.ts";
import { Cmd } from "../codec/header.ts";
import { beginOpReply, endMessage } from "../codec/messages.ts";
import type { StructValue } from "../codec/values.ts";
import type { Channel, Connection } from "./connection.ts";
import { changedBits, encodedUpdate, fullSelection, type NtShape, ntValue } from "./nt.ts";

interface Update {
  /** May be a shared, cached set (changedBits) until a squash needs its own copy. */
  bits: BitSet;
  owned: boolean;
  value: StructValue;
}

export class MonitorOp {
  readonly cmd = Cmd.MONITOR;
  private queue: Update[] = [];
  private running = false;
  private unsub: (() => void) | null = null;
  closed = false;
  private readonly selectsAll: boolean;

  constructor(
    readonly conn: Connection,
    readonly ioid: number,
    readonly channel: Channel,
    readonly pv: Pv,
    readonly shape: NtShape,
    /** Leaves the client selected. */
    readonly select: BitSet,
    readonly queueSize: number,
    readonly pipeline: boolean,
    /** Updates the client will still accept (pipeline only). */
    private window: number,
  ) {
    this.selectsAll = select.key() === shape.all.key();
  }

  get queued(): number {
    return this.queue.length;
  }

  /** START: a full update (every selected field that has a value), then changes as they come. */
  start(): void {
    if (this.closed || this.running) return;
    this.running = true;
    const full = fullSelection(this.shape, this.pv, this.select, this.selectsAll);
    this.enqueue(full, ntValue(this.pv), !this.selectsAll);
    this.unsub = this.pv.subscribe(this.onEvent);
  }

  stop(): void {
    this.running = false;
    this.unsub?.();
    this.unsub = null;
  }

  ack(n: number): void {
    this.window = Math.min(this.window + n, 0x7fffffff);
    if (this.queue.length > 0) this.conn.readyMonitors.add(this);
    this.conn.scheduleFlush();
  }

  close(): void {
    this.closed = true;
    this.stop();
    this.queue = [];
    this.conn.readyMonitors.delete(this);
  }

  private readonly onEvent = (mask: number): void => {
    if (this.closed || !this.running) return;
    const bits = changedBits(this.shape, mask & (DBE.VALUE | DBE.ALARM | DBE.PROPERTY));
    // Everything selected (the usual request): keep the shared set, so subscribers share encodings.
    const sel = this.selectsAll ? bits : bits.and(this.select);
    if (sel.isEmpty()) return;
    this.enqueue(sel, ntValue(this.pv), !this.selectsAll);
  };

  private enqueue(bits: BitSet, value: StructValue, owned = true): void {
    const last = this.queue[this.queue.length - 1];
    if (last && this.queue.length >= this.queueSize) {
      if (!last.owned) {
        last.bits = last.bits.clone();
        last.owned = true;
      }
      last.bits.or(bits);
      last.value = value;
      this.conn.srv.counters.updatesSquashed++;
    } else this.queue.push({ bits, owned, value });
    if (this.pipeline && this.window <= 0) return;
    this.conn.readyMonitors.add(this);
    this.conn.scheduleFlush();
  }

  /** Writes queued updates while the window and the connection allow. */
  pump(): void {
    const out = this.conn.out;
    while (this.queue.length > 0 && (!this.pipeline || this.window > 0)) {
      if (this.conn.congested || out.pos > 512 * 1024) return;
      const u = this.queue.shift() as Update;
      const p = beginOpReply(out, Cmd.MONITOR, this.ioid, 0, null);
      out.raw(encodedUpdate(this.shape.type, u.value, u.bits));
      out.u8(0); // overrun bits: empty, as pvxs sends
      endMessage(out, p);
      this.conn.srv.counters.updatesSent++;
      if (this.pipeline) this.window--;
    }
    this.conn.readyMonitors.delete(this);
  }
}
