/**
 * The plugin runtime's setPv batching (src/plugins/worker-pvs.ts), checked on what it sends: last
 * write per PV in a turn wins, the batch keeps setPv order (a PV set again moves to the end), and
 * one PV set many times in one turn neither grows the batch nor loses its latest value.
 */
import { afterAll, expect, test } from "bun:test";
import type { SetUpdate } from "../../src/plugins/protocol.ts";
import { type SetBatch, SetDecoder } from "../../src/plugins/set-batch.ts";
import { flush, hasPendingUpdate, host, pvs } from "../../src/plugins/worker-pvs.ts";

const sent: SetBatch[] = [];
const ownSend = process.send;
// worker-log's send() calls process.send: capture what a plugin process would put on its pipe.
process.send = ((m: SetBatch) => {
  sent.push(structuredClone(m));
  return true;
}) as typeof process.send;
afterAll(() => {
  process.send = ownSend;
});

for (const name of ["A", "B", "C"]) {
  pvs.set(name, { kind: "double", count: 1, writable: false, value: 0 });
}
pvs.set("S", { kind: "string", count: 1, writable: false, value: "" });
const decoder = new SetDecoder();

function flushed(): SetUpdate[] {
  sent.length = 0;
  flush();
  expect(sent.length).toBe(1);
  const out = decoder.decode(sent[0] as SetBatch);
  if (typeof out === "string") throw new Error(out);
  return out;
}

test("last write per PV wins, in setPv order", () => {
  host.setPv("A", 1);
  host.setPv("B", 2);
  host.setPv("A", 3, { severity: 2, status: 5 });
  host.setPv("S", "x");
  expect(hasPendingUpdate("A")).toBe(true);
  expect(hasPendingUpdate("C")).toBe(false);
  expect(flushed()).toEqual([
    ["B", 2],
    ["A", 3, 2, 5],
    ["S", "x"],
  ]);
  expect(hasPendingUpdate("A")).toBe(false);
  sent.length = 0;
  flush();
  expect(sent.length).toBe(0);
});

test("one PV set 100000 times in a turn: one update, the latest, order of the others kept", () => {
  host.setPv("C", -1);
  for (let i = 0; i < 100_000; i++) {
    host.setPv("A", i);
    if (i === 50_000) host.setPv("B", 7);
  }
  host.setPv("S", "end");
  expect(flushed()).toEqual([
    ["C", -1],
    ["B", 7],
    ["A", 99_999],
    ["S", "end"],
  ]);
  expect(host.getPv("A")).toBe(99_999);
});

test("setPv on an unknown PV names a few known ones, not all of a large plugin's", () => {
  for (let i = 0; i < 5000; i++) {
    pvs.set(`X${i}`, { kind: "double", count: 1, writable: false, value: 0 });
  }
  try {
    let message = "";
    try {
      host.setPv("NOPE", 1);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toStartWith('unknown PV "NOPE" (known: A, B, C, S, X0');
    expect(message).toEndWith(`… ${pvs.size} in all)`);
    expect(message.length).toBeLessThan(300);
  } finally {
    for (let i = 0; i < 5000; i++) pvs.delete(`X${i}`);
  }
});
