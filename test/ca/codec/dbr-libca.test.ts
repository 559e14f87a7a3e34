/**
 * Cross-checks encodeDbr against the reference client library: every payload goes through libca's
 * own caNetConvert (network → host order) and is read back through C-compiler-laid-out structs
 * (test/ca/codec/fixtures/libca_dbr.py, run with Debian's /usr/bin/python3).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import {
  DBR,
  dbrElementSize,
  dbrPayloadSize,
  dbrValueOffset,
  decodePut,
  ECA,
  encodeDbr,
} from "../../../src/ca/codec/index.ts";
import { Pv } from "../../../src/pv/pv.ts";
import type { PvValue } from "../../../src/pv/types.ts";
import { hex } from "./helpers.ts";

const EPOCH = 631152000;
const TS = { sec: EPOCH + 1000, nsec: 5 };

function makePvs(): Record<string, Pv> {
  const dbl = new Pv({
    name: "T:DBL",
    kind: "double",
    meta: {
      precision: 2,
      units: "mm",
      displayLow: -10,
      displayHigh: 10,
      controlLow: -5,
      controlHigh: 5,
      alarm: { hihi: 8, high: 4, low: -4, lolo: -8 },
    },
  });
  dbl.post(3.5, { status: 4, severity: 1, timestamp: TS });
  const lng = new Pv({
    name: "T:LNG",
    kind: "long",
    count: 5,
    meta: { units: "V", displayLow: 0, displayHigh: 100, alarm: { high: 90 } },
  });
  lng.post(new Int32Array([1, -2, 300, 40000]), { status: 0, severity: 0, timestamp: TS });
  const str = new Pv({ name: "T:STR", kind: "string" });
  str.post("hello", { status: 17, severity: 3, timestamp: TS });
  const enm = new Pv({ name: "T:ENM", kind: "enum", meta: { states: ["Off", "On", "Fault"] } });
  enm.post(1, { status: 7, severity: 2, timestamp: TS });
  const chr = new Pv({ name: "T:CHR", kind: "char", count: 8 });
  chr.post(new Uint8Array([72, 105, 0]), { status: 0, severity: 0, timestamp: TS });
  return { dbl, lng, str, enm, chr };
}

// C casts as the C compiler does them for in-range and wrapping integer conversions.
const cast: Record<number, (x: number) => number> = {
  1: (x) => (Math.trunc(x) << 16) >> 16,
  2: (x) => Math.fround(x),
  3: (x) => Math.trunc(x) & 0xffff,
  4: (x) => Math.trunc(x) & 0xff,
  5: (x) => Math.trunc(x) | 0,
  6: (x) => x,
};

interface Decoded {
  eca: number;
  sizeof: number;
  value_offset: number;
  status?: number;
  severity?: number;
  secs?: number;
  nsec?: number;
  precision?: number;
  units?: string;
  no_str?: number;
  strs?: string[];
  ackt?: number;
  acks?: number;
  value: (number | string)[];
  [limit: string]: unknown;
}

interface Case {
  pv: string;
  type: number;
  count: number;
  payload: Uint8Array;
  replyCount: number;
}

const pvs = makePvs();
const cases: Case[] = [];
const errors: { pv: string; type: number; error: number }[] = [];
for (const [name, pv] of Object.entries(pvs)) {
  for (let t = 0; t <= 38; t++) {
    if (t === DBR.PUT_ACKT || t === DBR.PUT_ACKS) continue;
    for (const req of pv.count > 1 ? [pv.count, 0, 2] : [1]) {
      const r = encodeDbr(pv, t, req);
      if ("error" in r) errors.push({ pv: name, type: t, error: r.error });
      else cases.push({ pv: name, type: t, count: req, payload: r.payload, replyCount: r.count });
    }
  }
}

let tables: Record<string, number[]> = {};
let decoded: Decoded[] = [];

beforeAll(() => {
  const input = JSON.stringify(
    cases.map((c) => ({ type: c.type, count: c.replyCount, hex: hex(c.payload) })),
  );
  const proc = Bun.spawnSync(
    ["/usr/bin/python3", join(import.meta.dir, "fixtures", "libca_dbr.py")],
    {
      stdin: new TextEncoder().encode(input),
    },
  );
  if (proc.exitCode !== 0) throw new Error(`libca_dbr.py failed: ${proc.stderr.toString()}`);
  const out = JSON.parse(proc.stdout.toString());
  tables = out.tables;
  decoded = out.decoded;
});

const num = (v: number | string | unknown) => (v === "nan" ? Number.NaN : v);

function expectedValues(pvName: string, type: number, count: number): (number | string)[] {
  const fam = type <= 34 ? type % 7 : 0;
  const pv = pvs[pvName]!;
  const raw: number[] =
    typeof pv.value === "number"
      ? [pv.value]
      : typeof pv.value === "string"
        ? []
        : Array.from(pv.value);
  const out: (number | string)[] = [];
  for (let i = 0; i < count; i++) {
    const v = raw[i] ?? 0;
    const valid = typeof pv.value === "object" ? pv.value.length : 1;
    if (i >= valid) {
      // Elements past the valid ones are zero-filled: empty strings, zeros.
      out.push(fam === 0 || type >= 37 ? "" : 0);
    } else if (fam === 0 || type >= 37) {
      if (pvName === "dbl") out.push("3.50");
      else if (pvName === "str") out.push(i === 0 ? "hello" : "");
      else if (pvName === "enm") out.push("On");
      else out.push(String(v));
    } else out.push(cast[fam]!(v));
  }
  return out;
}

describe("encodeDbr against libca", () => {
  test("layout tables equal libca's dbr_size / dbr_value_size / dbr_value_offset", () => {
    for (let t = 0; t <= 38; t++) {
      expect([t, dbrPayloadSize(t, 1)]).toEqual([t, tables.dbr_size![t]!]);
      expect([t, dbrElementSize(t)]).toEqual([t, tables.dbr_value_size![t]!]);
      expect([t, dbrValueOffset(t)]).toEqual([t, tables.dbr_value_offset![t]!]);
      expect(dbrPayloadSize(t, 3)).toBe(tables.dbr_size![t]! + 2 * tables.dbr_value_size![t]!);
    }
  });

  test("only a string that is not a number fails, and only for numeric types", () => {
    for (const e of errors) {
      expect(e.pv).toBe("str");
      expect(e.error).toBe(ECA.GETFAIL);
      expect(e.type % 7).not.toBe(0);
    }
    expect(errors.length).toBe(6 * 5 - 0); // 6 numeric families × plain/STS/TIME/GR/CTRL
  });

  test("every payload is converted by caNetConvert and decodes to the PV's state", () => {
    expect(decoded.length).toBe(cases.length);
    cases.forEach((c, i) => {
      const d = decoded[i]!;
      const label = `${c.pv} type ${c.type} count ${c.count}`;
      expect([label, d.eca]).toEqual([label, 1]);
      expect([label, c.payload.length % 8]).toEqual([label, 0]);
      expect([label, c.payload.length >= dbrPayloadSize(c.type, c.replyCount)]).toEqual([
        label,
        true,
      ]);
      const pv = pvs[c.pv]!;
      // Reply count: requested, or for a count-0 request the valid elements (CLASS_NAME: the
      // channel's element count, as rsrv answers it).
      const dynamicCount = c.type === DBR.CLASS_NAME ? pv.count : pv.length;
      const wantCount = c.count === 0 ? dynamicCount : c.count;
      expect([label, c.replyCount]).toEqual([label, wantCount]);
      if (c.type === DBR.CLASS_NAME) {
        const name = { dbl: "ai", lng: "waveform", str: "stringin", enm: "mbbi", chr: "waveform" }[
          c.pv
        ]!;
        const rest: string[] = Array(c.replyCount - 1).fill("");
        expect([label, d.value]).toEqual([label, [name, ...rest]]);
        return;
      }
      expect([label, d.value.map(num)]).toEqual([
        label,
        expectedValues(c.pv, c.type, c.replyCount),
      ]);
      if (c.type >= 7) {
        expect([label, d.status, d.severity]).toEqual([label, pv.status, pv.severity]);
      }
      if (c.type >= 14 && c.type <= 20) expect([label, d.secs, d.nsec]).toEqual([label, 1000, 5]);
      if (c.type === DBR.STSACK_STRING) expect([label, d.ackt, d.acks]).toEqual([label, 1, 0]);
      const fam = c.type % 7;
      if (c.type >= 21 && c.type <= 34 && fam !== 0) {
        const ctrl = c.type >= 28;
        if (fam === 3) {
          const states = c.pv === "enm" ? ["Off", "On", "Fault"] : [];
          expect([label, d.no_str, d.strs?.slice(0, 4)]).toEqual([
            label,
            states.length,
            [...states, "", "", "", ""].slice(0, 4),
          ]);
          return;
        }
        if (fam === 2 || fam === 6)
          expect([label, d.precision]).toEqual([label, c.pv === "dbl" ? 2 : 0]);
        expect([label, d.units]).toEqual([label, { dbl: "mm", lng: "V" }[c.pv] ?? ""]);
        const isFloat = fam === 2 || fam === 6;
        const unset = isFloat ? Number.NaN : 0;
        const lim: Record<string, number[]> = {
          dbl: [10, -10, 8, 4, -4, -8, 5, -5],
          lng: [100, 0, unset, 90, unset, unset, 0, 0],
        };
        const want = (lim[c.pv] ?? [0, 0, unset, unset, unset, unset, 0, 0]).map((x) =>
          Number.isNaN(x) ? x : cast[fam]!(x),
        );
        const names = [
          "upper_disp_limit",
          "lower_disp_limit",
          "upper_alarm_limit",
          "upper_warning_limit",
          "lower_warning_limit",
          "lower_alarm_limit",
          "upper_ctrl_limit",
          "lower_ctrl_limit",
        ];
        const got = names.slice(0, ctrl ? 8 : 6).map((n) => num(d[n]));
        expect([label, got]).toEqual([label, want.slice(0, ctrl ? 8 : 6)]);
      }
    });
  });
});

describe("decodePut of payloads encoded by libca (caNetConvert host → network)", () => {
  interface Put {
    type: number;
    values: (number | string)[];
    target: { kind: "double" | "long" | "string" | "enum" | "char"; count: number; meta: object };
    want: PvValue;
  }
  const states = { states: ["Off", "On", "Fault"] };
  const puts: Put[] = [
    {
      type: DBR.DOUBLE,
      values: [1.5, -2.25],
      target: { kind: "double", count: 4, meta: {} },
      want: new Float64Array([1.5, -2.25]),
    },
    { type: DBR.DOUBLE, values: [3.75], target: { kind: "long", count: 1, meta: {} }, want: 3 },
    {
      type: DBR.FLOAT,
      values: [0.5, 8],
      target: { kind: "double", count: 2, meta: {} },
      want: new Float64Array([0.5, 8]),
    },
    {
      type: DBR.LONG,
      values: [-7, 2147483647],
      target: { kind: "long", count: 2, meta: {} },
      want: new Int32Array([-7, 2147483647]),
    },
    { type: DBR.SHORT, values: [-2], target: { kind: "double", count: 1, meta: {} }, want: -2 },
    {
      type: DBR.CHAR,
      values: [104, 105, 0],
      target: { kind: "char", count: 8, meta: {} },
      want: new Uint8Array([104, 105, 0]),
    },
    { type: DBR.ENUM, values: [2], target: { kind: "enum", count: 1, meta: states }, want: 2 },
    {
      type: DBR.STRING,
      values: ["Fault"],
      target: { kind: "enum", count: 1, meta: states },
      want: 2,
    },
    {
      type: DBR.STRING,
      values: ["42.5 mm"],
      target: { kind: "double", count: 1, meta: {} },
      want: 42.5,
    },
    {
      type: DBR.STRING,
      values: ["héllo"],
      target: { kind: "string", count: 1, meta: {} },
      want: "héllo",
    },
    {
      type: DBR.STRING,
      values: ["1", "2", "x"],
      target: { kind: "long", count: 2, meta: {} },
      want: new Int32Array([1, 2]),
    },
  ];

  test("every libca-encoded put decodes to the value sent", () => {
    const proc = Bun.spawnSync(
      ["/usr/bin/python3", join(import.meta.dir, "fixtures", "libca_dbr.py")],
      {
        stdin: new TextEncoder().encode(
          JSON.stringify({ encode: puts.map((p) => ({ type: p.type, values: p.values })) }),
        ),
      },
    );
    if (proc.exitCode !== 0) throw new Error(`libca_dbr.py failed: ${proc.stderr.toString()}`);
    const encoded: { eca: number; hex: string }[] = JSON.parse(proc.stdout.toString()).encoded;
    expect(encoded.length).toBe(puts.length);
    puts.forEach((p, i) => {
      const e = encoded[i]!;
      expect(e.eca).toBe(ECA.NORMAL);
      const raw = Uint8Array.from(e.hex.match(/../g) ?? [], (x) => Number.parseInt(x, 16));
      // Pad to 8 as libca does on the wire.
      const payload = new Uint8Array((raw.length + 7) & ~7);
      payload.set(raw);
      const r = decodePut(p.type, p.values.length, payload, p.target, true);
      expect([i, r]).toEqual([i, { value: p.want }]);
    });
  });
});
