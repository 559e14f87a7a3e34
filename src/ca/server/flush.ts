/**
 * When circuits hand what they queued outside a request chunk (monitor updates after a PV post,
 * WRITE_NOTIFY answers and held requests after a write settles) to the kernel: once per circuit
 * per burst, not once per post.
 *
 * The first flush of an event-loop turn runs in a microtask, so a lone post (a 10 Hz task, a
 * plugin's setPv) reaches the client without waiting for anything. Later ones in the same turn
 * wait for a setImmediate that closes the turn: Bun (like Node) runs microtasks after every
 * macrotask callback, so write completions answered one callback each (a plugin-like handler
 * resolving through setImmediate, one message per answer) would otherwise cost one `send` each —
 * in acctst's write-traffic steps 500,000 sends, 60 % of the server's CPU in the kernel.
 */

/** What the scheduler flushes. */
export interface Flushable {
  /** True while queued here; cleared by flush(). */
  flushScheduled: boolean;
  flush(): void;
}

export class FlushScheduler<C extends Flushable> {
  // Two arrays swapped on each run: queuing a circuit allocates nothing.
  private dirty: C[] = [];
  private spare: C[] = [];
  private microQueued = false;
  private immediateQueued = false;
  // True from a microtask flush until the setImmediate that ends the turn.
  private flushedThisTurn = false;

  /** Asks for `c.flush()` at the end of this tick, or of this event-loop turn (see above). */
  schedule(c: C): void {
    c.flushScheduled = true;
    this.dirty.push(c);
    if (this.microQueued) return;
    if (this.flushedThisTurn) {
      // The turn's setImmediate is queued (runMicro queued it) and will flush.
      return;
    }
    this.microQueued = true;
    queueMicrotask(this.runMicro);
  }

  private readonly runMicro = (): void => {
    this.microQueued = false;
    this.flushedThisTurn = true;
    if (!this.immediateQueued) {
      this.immediateQueued = true;
      setImmediate(this.runImmediate);
    }
    this.flushDirty();
  };

  private readonly runImmediate = (): void => {
    this.immediateQueued = false;
    this.flushedThisTurn = false;
    this.flushDirty();
  };

  private flushDirty(): void {
    const list = this.dirty;
    if (list.length === 0) return;
    this.dirty = this.spare;
    try {
      for (let i = 0; i < list.length; i++) {
        const c = list[i] as C;
        if (c.flushScheduled) c.flush();
      }
    } finally {
      // Also after a throw: `dirty` and `spare` must never become the same array.
      list.length = 0;
      this.spare = list;
    }
  }
}
