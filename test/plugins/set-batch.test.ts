/**
 * The columnar setPv wire form (src/plugins/set-batch.ts): what goes in comes out in the same
 * order, and a batch a hostile plugin forges is refused whole with a reason. End to end (a real
 * plugin's setPv reaching its PVs) is covered by every plugin test; this checks the codec's edges.
 */
import { describe, expect, test } from "bun:test";
import type { SetUpdate } from "../../src/plugins/protocol.ts";
import { type SetBatch, SetDecoder, SetEncoder } from "../../src/plugins/set-batch.ts";

function roundTrip(enc: SetEncoder, dec: SetDecoder, updates: SetUpdate[]): SetUpdate[] | string {
  // structuredClone: what Bun's "advanced" IPC serialization does to the message.
  return dec.decode(structuredClone(enc.encode(updates, updates.length)));
}

describe("setPv batches in columns", () => {
  test("values, order, alarms and names survive; names are sent once", () => {
    const enc = new SetEncoder();
    const dec = new SetDecoder();
    const first: SetUpdate[] = [
      ["B", 1.5],
      ["A", "text"],
      ["C", [1, 2, 3]],
      ["D", new Float64Array([4, 5])],
      ["E", Number.NaN, 2, 7],
      ["F", -0, 1],
      ["G", 2 ** 53 + 2],
    ];
    const out = roundTrip(enc, dec, first);
    expect(out).toEqual(first);
    expect(Object.is((out as SetUpdate[])[5]?.[1], -0)).toBe(true);
    const again = enc.encode(
      [
        ["A", 3],
        ["H", 4],
      ],
      2,
    );
    expect(again.defs).toEqual(["H"]);
    expect(dec.decode(structuredClone(again))).toEqual([
      ["A", 3],
      ["H", 4],
    ]);
  });

  test("an empty batch decodes to nothing", () => {
    expect(roundTrip(new SetEncoder(), new SetDecoder(), [])).toEqual([]);
  });

  test("forged batches are refused whole", () => {
    const good = (): SetBatch =>
      new SetEncoder().encode(
        [
          ["A", 1],
          ["B", "x"],
        ],
        2,
      );
    const forge = (f: (b: SetBatch) => unknown): unknown => {
      const b = good();
      const r = f(b);
      return new SetDecoder().decode((r ?? b) as SetBatch);
    };
    const refused = [
      forge((b) => ({ ...b, ids: [0, 1] })),
      forge((b) => ({ ...b, nums: new Float32Array(2) })),
      forge((b) => ({ ...b, defs: "A" })),
      forge((b) => ({ ...b, defs: [1, 2] })),
      forge((b) => ({ ...b, ids: new Uint32Array([0, 9]) })),
      forge((b) => ({ ...b, nums: new Float64Array(3) })),
      forge((b) => ({ ...b, extra: [1] })),
      forge((b) => ({ ...b, extra: [5, "x"] })),
      forge((b) => ({ ...b, extra: [1, "x", 1, "y"] })),
      forge((b) => ({ ...b, extra: ["1", "x"] })),
      forge((b) => ({ ...b, alarms: new Int32Array([0, 1]) })),
      forge((b) => ({ ...b, alarms: new Int32Array([4, 1, 1]) })),
      forge(() => ({ t: "setb" })),
      forge(() => ({
        t: "setb",
        defs: new Array(2 ** 20 + 1).fill("X"),
        ids: new Uint32Array(0),
        nums: new Float64Array(0),
        extra: [],
        alarms: new Int32Array(0),
      })),
    ];
    for (const r of refused) expect(typeof r).toBe("string");
    // A refused batch defines no names: a later batch using id 0 is still refused.
    const dec = new SetDecoder();
    expect(typeof dec.decode({ ...good(), extra: [7, "x"] })).toBe("string");
    expect(
      typeof dec.decode({
        t: "setb",
        defs: [],
        ids: new Uint32Array([0]),
        nums: new Float64Array(1),
        extra: [],
        alarms: new Int32Array(0),
      }),
    ).toBe("string");
  });
});
