/**
 * Delivers one plugin process's messages in order, applying a large setPv batch in slices with a
 * macrotask between them so that CA/PVA requests are served meanwhile.
 *
 * Why: the server applies `setPv` batches on its main thread, the thread that answers every CA
 * and PVA request. A plugin updating 1,000 PVs at 10 Hz sends one batch of 1,000 updates per cycle;
 * applied in one go it held the main thread for 0.5–1 ms at a time (several ms in the first
 * seconds after a start, before the code is compiled), and any get arriving meanwhile waited for
 * the end of it: 1–2 % of sequential gets, i.e. the whole p99 of scripts/bench/ca-p99.ts
 * (docs/ca-server.md, "Get round-trip tail"). softIoc's scan thread does the same work, but CA
 * requests are served by other threads there. With slices of `SLICE` updates the main thread is
 * given back to the event loop after ~50–150 µs.
 *
 * Order is what every reader relies on (a WRITE_NOTIFY answered after the plugin's own setPv of the
 * PV, a get after a put), so while a batch is being applied every later message of the same
 * process waits behind it — replies, the next batches, logs — and runs in arrival order once the
 * batch is done. Other processes' messages are not held: their order relative to this one was never
 * defined (they come over separate pipes). A batch of up to `SLICE` updates, the common case of a
 * plugin setting a few PVs, is applied at once as before.
 */
import type { SetUpdate } from "../protocol.ts";

/** Updates applied per slice (~0.5–1 µs each on a warm server). */
export const SLICE = 128;

export class MessageGate<M> {
  private readonly queue: M[] = [];
  private rest: SetUpdate[] | null = null;
  private next = 0;
  private stepQueued = false;

  /**
   * @param handle  applies one message; for a setPv batch it calls `applySet` below.
   * @param onSet   applies a list of updates (the host's `events.onSet`).
   * @param onError a queued message's handler threw: reported as an uncaught error, as a throw in
   *                the IPC callback was, without stalling the messages after it.
   */
  constructor(
    private readonly handle: (m: M) => void,
    private readonly onSet: (updates: SetUpdate[]) => void,
    private readonly onError: (e: unknown) => void = reportError,
  ) {}

  /** A message from the process: handled now, or queued behind a batch being applied. */
  deliver(m: M): void {
    if (this.rest !== null || this.queue.length > 0) {
      this.queue.push(m);
      return;
    }
    this.handle(m);
  }

  /** Applies a decoded setPv batch: at once when small, else its first slice now, the rest later. */
  applySet(updates: SetUpdate[]): void {
    if (updates.length <= SLICE) {
      this.onSet(updates);
      return;
    }
    this.rest = updates;
    this.next = 0;
    this.step();
  }

  /** True while a batch or queued messages wait (tests). */
  get busy(): boolean {
    return this.rest !== null || this.queue.length > 0;
  }

  private readonly step = (): void => {
    this.stepQueued = false;
    const rest = this.rest;
    if (rest === null) return;
    const end = Math.min(this.next + SLICE, rest.length);
    const from = this.next;
    this.next = end;
    try {
      this.onSet(from === 0 && end === rest.length ? rest : rest.slice(from, end));
    } finally {
      // Also after a throw (onSet logs per update, so it should not): never stall the process's
      // later messages.
      if (end < rest.length) this.schedule();
      else {
        this.rest = null;
        this.drain();
      }
    }
  };

  private schedule(): void {
    if (this.stepQueued) return;
    this.stepQueued = true;
    // setImmediate, not a microtask: the event loop polls its sockets before running it.
    setImmediate(this.step);
  }

  /** Runs queued messages in order until one of them starts a sliced batch again. */
  private drain(): void {
    while (this.rest === null && this.queue.length > 0) {
      const m = this.queue.shift() as M;
      try {
        this.handle(m);
      } catch (e) {
        this.onError(e);
      }
    }
  }
}
