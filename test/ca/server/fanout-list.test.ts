import { describe, expect, test } from "bun:test";
import {
  type FanoutSubscription,
  InUseCount,
  PvEntry,
  type SubscriptionSink,
} from "../../../src/ca/server/fanout.ts";
import { Pv } from "../../../src/pv/pv.ts";

// A fan-out subscription as the circuit's Subscription carries it (links owned by PvEntry).
function sub(
  name: string,
  sink: SubscriptionSink,
  mask = 1,
): FanoutSubscription & { name: string } {
  return { name, mask, sink, fanPrev: null, fanNext: null, fanLinked: false };
}

describe("PvEntry subscription list", () => {
  test("a post reaches every linked subscription once, in order; removal mid-walk is safe", () => {
    const pv = new Pv({ name: "T:FAN", kind: "double" });
    const entry = new PvEntry(pv, new InUseCount());
    const got: string[] = [];
    let onDeliver: (s: FanoutSubscription) => void = () => {};
    const sink: SubscriptionSink = {
      queueUpdate(s) {
        // Every subscription of this test is made by sub() below, with a name.
        got.push((s as FanoutSubscription & { name: string }).name);
        onDeliver(s);
      },
    };
    const subs = ["a", "b", "c", "d", "e"].map((n) => sub(n, sink));
    for (const s of subs) entry.addSubscription(s);
    entry.addSubscription(subs[0] as FanoutSubscription); // already linked: no duplicate
    expect(entry.subscriptionCount).toBe(5);
    pv.post(1);
    expect(got).toEqual(["a", "b", "c", "d", "e"]);

    // Delivering to "b" removes "b" itself, "c" and "d" (a circuit dropped during the fan-out).
    got.length = 0;
    onDeliver = (s) => {
      if (s === subs[1]) for (const r of subs.slice(1, 4)) entry.removeSubscription(r);
    };
    pv.post(2);
    expect(got).toEqual(["a", "b", "e"]);
    expect(entry.subscriptionCount).toBe(2);

    // Removing the head and the tail keeps the rest reachable; removing twice is harmless.
    onDeliver = () => {};
    entry.removeSubscription(subs[0] as FanoutSubscription);
    entry.removeSubscription(subs[0] as FanoutSubscription);
    got.length = 0;
    pv.post(3);
    expect(got).toEqual(["e"]);
    expect(pv.listenerCount).toBe(1);
    // The last one gone: the Pv listener is detached.
    entry.removeSubscription(subs[4] as FanoutSubscription);
    expect(entry.subscriptionCount).toBe(0);
    expect(pv.listenerCount).toBe(0);
    got.length = 0;
    pv.post(4);
    expect(got).toEqual([]);
  });
});
