/**
 * Micro-benchmarks of the CA codec's hot paths (monitor encoding, put decoding, TCP reassembly).
 * Run: bun scripts/bench/codec.ts   (about 10 s; prints one line per figure)
 */
import {
  CMD,
  DBR,
  decodePut,
  encodeDbr,
  encodeMessage,
  MessageReader,
  READ,
  writeEventUpdateHeader,
} from "../../src/ca/codec/index.ts";
import { Pv } from "../../src/pv/pv.ts";

function bench(name: string, iterations: number, fn: () => void): void {
  for (let i = 0; i < Math.min(iterations, 10000); i++) fn(); // warm-up / JIT
  const t0 = Bun.nanoseconds();
  for (let i = 0; i < iterations; i++) fn();
  const ns = (Bun.nanoseconds() - t0) / iterations;
  const rate = 1e9 / ns;
  console.log(
    `${name.padEnd(48)} ${ns.toFixed(1).padStart(10)} ns/op ${(rate / 1e6).toFixed(2).padStart(8)} M ops/s`,
  );
}

const dbl = new Pv({
  name: "B:DBL",
  kind: "double",
  meta: { precision: 3, units: "mm", displayLow: 0, displayHigh: 10, alarm: { high: 8 } },
});
dbl.post(1.23456);
const enm = new Pv({ name: "B:ENM", kind: "enum", meta: { states: ["Off", "On", "Fault"] } });
const wave = new Pv({ name: "B:WAVE", kind: "double", count: 1_000_000 });
wave.post(new Float64Array(1_000_000).map((_, i) => i * 0.5));

let sink = 0;
bench("encodeDbr DBR_DOUBLE scalar", 2_000_000, () => {
  const r = encodeDbr(dbl, DBR.DOUBLE, 1);
  if ("payload" in r) sink += r.payload.length;
});
bench("encodeDbr DBR_TIME_DOUBLE scalar", 2_000_000, () => {
  const r = encodeDbr(dbl, DBR.TIME_DOUBLE, 1);
  if ("payload" in r) sink += r.payload.length;
});
bench("encodeDbr DBR_CTRL_DOUBLE scalar", 1_000_000, () => {
  const r = encodeDbr(dbl, DBR.CTRL_DOUBLE, 1);
  if ("payload" in r) sink += r.payload.length;
});
bench("encodeDbr DBR_STRING from double (PREC)", 1_000_000, () => {
  const r = encodeDbr(dbl, DBR.STRING, 1);
  if ("payload" in r) sink += r.payload.length;
});
bench("encodeDbr DBR_CTRL_ENUM", 500_000, () => {
  const r = encodeDbr(enm, DBR.CTRL_ENUM, 1);
  if ("payload" in r) sink += r.payload.length;
});
bench("encodeDbr DBR_TIME_DOUBLE 1 M elements", 20, () => {
  const r = encodeDbr(wave, DBR.TIME_DOUBLE, 0);
  if ("payload" in r) sink += r.payload.length;
});

const f64 = new Uint8Array(8);
new DataView(f64.buffer).setFloat64(0, 2.5);
const target = { kind: "double" as const, count: 1, meta: {} };
bench("decodePut DBR_DOUBLE scalar", 2_000_000, () => {
  const r = decodePut(DBR.DOUBLE, 1, f64, target, true);
  if ("value" in r) sink++;
});
const on = new TextEncoder().encode("On\0\0\0\0\0\0");
bench("decodePut DBR_STRING state name → enum", 2_000_000, () => {
  const r = decodePut(DBR.STRING, 1, on, enm, true);
  if ("value" in r) sink++;
});

const hdrBuf = new DataView(new ArrayBuffer(64));
bench("writeEventUpdateHeader", 5_000_000, () => {
  sink += writeEventUpdateHeader(hdrBuf, 0, DBR.TIME_DOUBLE, 1, 1, 7, 24, true);
});

// Reassembly: 1 M READ_NOTIFY requests (16 bytes each) delivered in 64 KiB chunks.
const one = encodeMessage(CMD.READ_NOTIFY, DBR.TIME_DOUBLE, 1, 4, 9);
const stream = new Uint8Array(one.length * 1_000_000);
for (let i = 0; i < 1_000_000; i++) stream.set(one, i * one.length);
const reader = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
const t0 = Bun.nanoseconds();
let msgs = 0;
for (let o = 0; o < stream.length; o += 65536) {
  reader.push(stream.subarray(o, Math.min(o + 65536, stream.length)));
  while (reader.next() !== null) msgs++;
}
const secs = (Bun.nanoseconds() - t0) / 1e9;
console.log(
  `${"MessageReader 1 M x 16-byte messages, 64 KiB chunks".padEnd(48)} ${(msgs / secs / 1e6).toFixed(2).padStart(10)} M msg/s ${(stream.length / secs / 1e6).toFixed(0).padStart(8)} MB/s`,
);
{
  // Same stream through the allocation-free read() the server uses.
  const r2 = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
  const t1 = Bun.nanoseconds();
  let n2 = 0;
  for (let o = 0; o < stream.length; o += 65536) {
    r2.push(stream.subarray(o, Math.min(o + 65536, stream.length)));
    while (r2.read() === READ.MESSAGE) n2++;
  }
  const s2 = (Bun.nanoseconds() - t1) / 1e9;
  console.log(
    `${"MessageReader.read() same stream".padEnd(48)} ${(n2 / s2 / 1e6).toFixed(2).padStart(10)} M msg/s ${(stream.length / s2 / 1e6).toFixed(0).padStart(8)} MB/s`,
  );
}
if (sink === -1) console.log("unreachable");

// One request per socket read (the common interactive case): push + next per message.
const small = new MessageReader({ maxPayload: 1 << 20, extendedAllowed: () => true });
bench("MessageReader push+next, one message per read", 2_000_000, () => {
  small.push(one.slice(0));
  if (small.next() !== null) sink++;
});
