/**
 * Drives our server with the client halves of the captured pvxs conversations: the PVs of the
 * reference database are served from a PvRegistry, each captured client message is sent byte for
 * byte, and each reply the reference server gave is compared in structure with ours (command,
 * subcommand, success, type, and every field the reference sent, with the same value). Values that
 * the reference IOC changed from its shell (`dbpf`) are posted to our PV at the same point.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PvRegistry } from "../../src/pv/registry.ts";
import { Severity } from "../../src/pv/types.ts";
import type { PvaServer } from "../../src/pva/server/server.ts";
import { PvaClient } from "../helpers/pva-client.ts";
import { Dissector, hexToBytes } from "../helpers/pva-dissect.ts";
import { startPva } from "../helpers/pva-harness.ts";

interface CapMsg {
  dir: "c2s" | "s2c";
  proto: "tcp" | "udp";
  hex: string;
  conn: number;
}

const DIR = join(import.meta.dir, "fixtures");
const load = (f: string) =>
  JSON.parse(readFileSync(join(DIR, f), "utf8").replace(/\bNaN\b/g, '"NaN"')) as {
    messages: CapMsg[];
  };

/** The reference database (fixtures' ioc/pva-test.db) as iocmng PVs. */
function referencePvs(reg: PvRegistry): void {
  const noop = () => {};
  reg.add(
    {
      name: "PVA:TEST:DBL",
      kind: "double",
      writable: true,
      initial: 1.5,
      meta: {
        description: "Test double",
        units: "mA",
        precision: 3,
        displayLow: -100,
        displayHigh: 100,
        controlLow: -50,
        controlHigh: 50,
        alarm: {
          hihi: 40,
          high: 30,
          low: -30,
          lolo: -40,
          hhsv: Severity.MAJOR,
          hsv: Severity.MINOR,
          lsv: Severity.MINOR,
          llsv: Severity.MAJOR,
        },
      },
    },
    noop,
  );
  reg.add({
    name: "PVA:TEST:LONG",
    kind: "long",
    writable: true,
    initial: 42,
    meta: {
      description: "Test long",
      units: "counts",
      displayLow: 0,
      displayHigh: 1000,
      controlLow: 0,
      controlHigh: 500,
    },
  });
  reg.add({
    name: "PVA:TEST:STR",
    kind: "string",
    writable: true,
    initial: "hello",
    meta: { description: "Test string" },
  });
  reg.add({
    name: "PVA:TEST:BOOL",
    kind: "enum",
    writable: true,
    initial: 1,
    meta: { description: "Test bool", states: ["Off", "On"] },
  });
  reg.add({
    name: "PVA:TEST:ENUM",
    kind: "enum",
    writable: true,
    initial: 1,
    meta: { description: "Test enum", states: ["Zero", "One", "Two", "Three"] },
  });
  reg.add({
    name: "PVA:TEST:WF",
    kind: "double",
    count: 10,
    writable: true,
    initial: new Float64Array([1, 2.5, 3, 4.25, 5.5]),
    meta: {
      description: "Test waveform",
      units: "V",
      precision: 2,
      displayLow: 0,
      displayHigh: 10,
    },
  });
  reg.add({
    name: "PVA:TEST:WF300",
    kind: "double",
    count: 300,
    initial: new Float64Array(Array.from({ length: 260 }, (_, i) => i / 2)),
    meta: { description: "Big waveform (size > 253)" },
  });
  reg.add({
    name: "PVA:TEST:RO",
    kind: "double",
    initial: 3.25,
    meta: { description: "Read-only input", units: "V", precision: 2 },
  });
}

/** Fields whose values depend on the moment or on record details we do not model. */
const SKIP = /^timeStamp\.|^control\.limit|^valueAlarm\.|^display\.limit/;

function compareReply(
  ref: Record<string, unknown>,
  ours: Record<string, unknown>,
  where: string,
): void {
  expect({ where, sub: ours.subcommand }).toEqual({ where, sub: ref.subcommand });
  const ok = (s: unknown) => (s as { ok?: boolean } | undefined)?.ok;
  expect({ where, ok: ok(ours.status) }).toEqual({ where, ok: ok(ref.status) });
  if (ref.type_members)
    expect({ where, t: ours.type_members }).toEqual({ where, t: ref.type_members });
  if (ref.channel_ids)
    expect({ where, ids: ours.channel_ids }).toEqual({ where, ids: ref.channel_ids });
  if (ref.result_type) {
    // RPC results (the built-in `server` PV): same type; the channel list is the same database.
    expect({ where, t: ours.result_type }).toEqual({ where, t: ref.result_type });
    const names = (x: unknown) => (x as { value?: unknown } | undefined)?.value;
    if (Array.isArray(names(ref.result)))
      expect({ where, v: names(ours.result) }).toEqual({ where, v: names(ref.result) });
  }
  if (ref.changed_bits) {
    // We also set leaves softIocPVX leaves clear (docs/pva.md); every bit it sets we must set.
    const mine = new Set(ours.changed_bits as number[]);
    for (const b of ref.changed_bits as number[])
      expect({ where, b, has: mine.has(b) }).toEqual({ where, b, has: true });
    const f = (ours.fields ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(ref.fields as Record<string, unknown>)) {
      if (SKIP.test(k)) continue;
      const mv = ArrayBuffer.isView(f[k]) ? Array.from(f[k] as Float64Array) : f[k];
      expect({ where, k, v: mv }).toEqual({ where, k, v });
    }
  }
}

/** Before an unsolicited monitor update, make our PV take the value the reference posted. */
function postCaptured(reg: PvRegistry, name: string, fields: Record<string, unknown>): void {
  const pv = reg.get(name);
  const v = fields.value ?? fields["value.index"];
  if (pv && v !== undefined) pv.post(v);
}

/** Gives the PV the value the reference had when this conversation started. */
function presetFromCapture(msgs: CapMsg[]): void {
  const d = new Dissector();
  let name = "";
  for (const m of msgs) {
    const x = d.dissect(hexToBytes(m.hex), m.dir);
    const chans = x.body.channels as Array<{ name: string }> | undefined;
    if (m.dir === "c2s" && x.header.command === 7 && chans?.[0]) name = chans[0].name;
    if (m.dir === "s2c" && x.body.fields) {
      postCaptured(registry, name, x.body.fields as Record<string, unknown>);
      return;
    }
  }
}

const FILES = [
  "05-tcp-name-server-search.json",
  "10-get-double-full.json",
  "11-get-double-field-value.json",
  "12-get-enum-mbbo.json",
  "13-get-bool-bo.json",
  "14-get-string.json",
  "15-get-long.json",
  "16-get-waveform.json",
  "18-get-double-value-alarm.json",
  "19-get-waveform-260.json",
  "20-info-double.json",
  "21-get-unknown-field-request.json",
  "30-put-double.json",
  "31-put-enum-index.json",
  "32-put-enum-choice-string.json",
  "34-put-readonly-denied.json",
  "35-put-string.json",
  "36-put-long.json",
  "37-put-bool-index.json",
  "40-monitor-double.json",
  "41-monitor-double-queuesize2.json",
  "42-monitor-double-pipeline.json",
  "43-monitor-echo.json",
  "44-monitor-double-field-value.json",
  "50-rpc-server-channels.json",
  "51-rpc-server-info.json",
  "52-rpc-not-implemented.json",
];

let server: PvaServer;
let registry: PvRegistry;

beforeAll(async () => {
  registry = new PvRegistry();
  referencePvs(registry);
  ({ server } = await startPva({ registry }));
});
afterAll(async () => {
  await server.stop();
});

describe("our server answers the captured pvxs clients like softIocPVX", () => {
  for (const f of FILES) {
    test(f, async () => {
      const msgs = load(f).messages.filter((m) => m.proto === "tcp");
      const ref = new Dissector();
      const mine = new Dissector();
      presetFromCapture(msgs);
      const c = await PvaClient.connect(server.tcpPort, { validate: false });
      let channel = "";
      let monitorUpdates = 0;
      for (const [i, m] of msgs.entries()) {
        const bytes = hexToBytes(m.hex);
        const d = ref.dissect(bytes, m.dir);
        const where = `${f}#${i}`;
        if (m.dir === "c2s") {
          mine.dissect(bytes, "c2s");
          const chans = d.body.channels as Array<{ name: string }> | undefined;
          if (d.header.command === 7 && chans?.[0]) channel = chans[0].name;
          c.raw(bytes);
          continue;
        }
        if (d.header.command === 13 && d.body.subcommand === "0x00") {
          if (monitorUpdates++ > 0)
            postCaptured(registry, channel, d.body.fields as Record<string, unknown>);
        }
        const got = await c.next(
          (x) => x.command === d.header.command && x.control === d.header.control,
        );
        const raw = new Uint8Array(8 + got.payload.length);
        raw.set([0xca, 2, got.flags, got.command]);
        new DataView(raw.buffer).setUint32(4, got.size, got.le);
        raw.set(got.payload, 8);
        if (got.control) continue;
        const ours = mine.dissect(raw, "s2c");
        compareReply(d.body, ours.body, where);
      }
      c.close();
    });
  }
});
