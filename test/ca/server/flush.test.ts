/**
 * FlushScheduler (src/ca/server/flush.ts): a lone flush request is served in the same tick; many
 * requests from separate callbacks of one event-loop turn (write completions answered one
 * setImmediate each) are served together, not once each; nothing requested is left unflushed.
 */
import { expect, test } from "bun:test";
import { type Flushable, FlushScheduler } from "../../../src/ca/server/flush.ts";

class Counter implements Flushable {
  flushScheduled = false;
  flushes = 0;
  flush(): void {
    this.flushScheduled = false;
    this.flushes++;
  }
}

// Ends after every setImmediate queued before it, and after those they queued (the scheduler's
// own setImmediate comes one turn after the callbacks that asked for it): ordering, not time.
const turns = async (n = 2) => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

test("a lone request is flushed in the same tick, before any later macrotask", async () => {
  const f = new FlushScheduler<Counter>();
  const c = new Counter();
  let seenByImmediate = -1;
  setImmediate(() => {
    seenByImmediate = c.flushes;
  });
  f.schedule(c);
  await Promise.resolve();
  expect(c.flushes).toBe(1);
  expect(c.flushScheduled).toBe(false);
  await turns();
  expect(seenByImmediate).toBe(1);
  expect(c.flushes).toBe(1);
});

test("requests from 1,000 callbacks of one turn are flushed a few times, not 1,000", async () => {
  const f = new FlushScheduler<Counter>();
  const a = new Counter();
  const b = new Counter();
  for (let i = 0; i < 1000; i++) {
    setImmediate(() => {
      f.schedule(i % 2 === 0 ? a : b);
    });
  }
  await turns();
  expect(a.flushScheduled).toBe(false);
  expect(b.flushScheduled).toBe(false);
  expect(a.flushes).toBeGreaterThanOrEqual(1);
  expect(a.flushes + b.flushes).toBeLessThanOrEqual(4);
});

test("a request made while flushing is flushed too", async () => {
  const f = new FlushScheduler<Counter>();
  const second = new Counter();
  const first = new (class extends Counter {
    override flush(): void {
      super.flush();
      if (this.flushes === 1) f.schedule(second);
    }
  })();
  f.schedule(first);
  await turns();
  expect(first.flushes).toBe(1);
  expect(second.flushes).toBe(1);
  expect(second.flushScheduled).toBe(false);
  // The scheduler goes back to flushing in the tick once the turn is over.
  f.schedule(first);
  await Promise.resolve();
  expect(first.flushes).toBe(2);
});
