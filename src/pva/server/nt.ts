/**
 * Normative types from PV kinds and metadata (docs/pva.md §Mapping): NTScalar for scalars,
 * NTScalarArray for arrays, NTEnum for enums. The type depends only on kind and count; the value
 * is rebuilt once per PV generation and shared by every connection. Field bit groups let a DBE
 * event mask become the changed-field BitSet of a monitor update.
 */
import type { Pv } from "../../pv/pv.ts";
import { AlarmStatus, DBE, type PvValue } from "../../pv/types.ts";
import { BitSet } from "../codec/bitset.ts";
import { leafMask } from "../codec/pvrequest.ts";
import { lookup, scalar, scalarArray, struct, TypeCode, type TypeDesc } from "../codec/types.ts";
import { encodePartial, type StructValue } from "../codec/values.ts";
import { Writer } from "../codec/wire.ts";

const FORM_CHOICES = [
  "Default",
  "String",
  "Binary",
  "Decimal",
  "Hex",
  "Exponential",
  "Engineering",
];

/** alarm_t and time_t: also in the `server` PV's replies (server-pv.ts). */
export const alarmT = struct("alarm_t", [
  ["severity", scalar(TypeCode.INT32)],
  ["status", scalar(TypeCode.INT32)],
  ["message", scalar(TypeCode.STRING)],
]);
export const timeT = struct("time_t", [
  ["secondsPastEpoch", scalar(TypeCode.INT64)],
  ["nanoseconds", scalar(TypeCode.INT32)],
  ["userTag", scalar(TypeCode.INT32)],
]);
const enumT = struct("enum_t", [
  ["index", scalar(TypeCode.INT32)],
  ["choices", scalarArray(TypeCode.STRING)],
]);

function numericNt(id: string, valueType: TypeDesc, elem: number): TypeDesc {
  const lim = scalar(elem);
  return struct(id, [
    ["value", valueType],
    ["alarm", alarmT],
    ["timeStamp", timeT],
    [
      "display",
      struct("", [
        ["limitLow", lim],
        ["limitHigh", lim],
        ["description", scalar(TypeCode.STRING)],
        ["units", scalar(TypeCode.STRING)],
        ["precision", scalar(TypeCode.INT32)],
        ["form", enumT],
      ]),
    ],
    [
      "control",
      struct("", [
        ["limitLow", lim],
        ["limitHigh", lim],
        ["minStep", lim],
      ]),
    ],
    [
      "valueAlarm",
      struct("", [
        ["active", scalar(TypeCode.BOOLEAN)],
        ["lowAlarmLimit", lim],
        ["lowWarningLimit", lim],
        ["highWarningLimit", lim],
        ["highAlarmLimit", lim],
        ["lowAlarmSeverity", scalar(TypeCode.INT32)],
        ["lowWarningSeverity", scalar(TypeCode.INT32)],
        ["highWarningSeverity", scalar(TypeCode.INT32)],
        ["highAlarmSeverity", scalar(TypeCode.INT32)],
        ["hysteresis", scalar(TypeCode.FLOAT64)],
      ]),
    ],
  ]);
}

const ELEM: Record<string, number> = {
  double: TypeCode.FLOAT64,
  long: TypeCode.INT32,
  char: TypeCode.UINT8,
};

/** Field bit groups of one normative type, for turning DBE masks into changed-field sets. */
export interface NtShape {
  type: TypeDesc;
  /** Leaves of the whole type: what a full update sets. */
  all: BitSet;
  value: BitSet;
  alarm: BitSet;
  time: BitSet;
  property: BitSet;
  /**
   * What a full update (a GET, a monitor's first update) sends of a PV without alarm limits: the
   * leaves that have a value in the source. `control.minStep` never has one, and `valueAlarm`'s
   * `active`, severities and hysteresis only carry one when alarm limits are set (`fullAlarm`).
   * Leaving the rest clear is what softIocPVX does, and clients print or store only set fields.
   */
  full: BitSet;
  /** The same for a PV with alarm limits (or a hysteresis) set. */
  fullAlarm: BitSet;
  /** Bit of the field a PUT writes (value, or value.index for NTEnum). */
  valueBit: number;
  /** Bit of the `value` member (NTEnum: the enum_t structure). */
  valueMemberBit: number;
  isEnum: boolean;
}

function shape(type: TypeDesc, isEnum: boolean): NtShape {
  const all = leafMask(type);
  const group = (...paths: string[]) => {
    const b = new BitSet();
    for (const p of paths) {
      const hit = lookup(type, p);
      if (hit) b.setRange(hit.bit, hit.bit + hit.type.fieldCount);
    }
    return b.and(all);
  };
  const minus = (a: BitSet, b: BitSet) => {
    const out = a.clone();
    for (const i of b.toArray()) out.bytes[i >> 3] = (out.bytes[i >> 3] ?? 0) & ~(1 << (i & 7));
    return out;
  };
  const never = group("control.minStep");
  const alarmConfig = group(
    "valueAlarm.active",
    "valueAlarm.lowAlarmSeverity",
    "valueAlarm.lowWarningSeverity",
    "valueAlarm.highWarningSeverity",
    "valueAlarm.highAlarmSeverity",
    "valueAlarm.hysteresis",
  );
  const fullAlarm = minus(all, never);
  return {
    type,
    all,
    value: group(isEnum ? "value.index" : "value"),
    alarm: group("alarm"),
    time: group("timeStamp"),
    // A metadata change sends alarmConfig too: limits may just have been removed (active false).
    property: minus(
      group("display", "control", "valueAlarm", ...(isEnum ? ["value.choices"] : [])),
      never,
    ),
    full: minus(fullAlarm, alarmConfig),
    fullAlarm,
    valueBit: lookup(type, isEnum ? "value.index" : "value")?.bit ?? 1,
    valueMemberBit: 1,
    isEnum,
  };
}

const shapes = new Map<string, NtShape>();

/** The normative type shape for a PV (shared by every PV of the same kind and arity). */
export function ntShape(pv: Pv): NtShape {
  const array = pv.count > 1;
  const key = `${pv.kind}${array ? "[]" : ""}`;
  let s = shapes.get(key);
  if (s) return s;
  if (pv.kind === "enum") {
    s = shape(
      struct("epics:nt/NTEnum:1.0", [
        ["value", enumT],
        ["alarm", alarmT],
        ["timeStamp", timeT],
        ["display", struct("", [["description", scalar(TypeCode.STRING)]])],
      ]),
      true,
    );
  } else if (pv.kind === "string") {
    s = shape(
      struct("epics:nt/NTScalar:1.0", [
        ["value", scalar(TypeCode.STRING)],
        ["alarm", alarmT],
        ["timeStamp", timeT],
        [
          "display",
          struct("", [
            ["description", scalar(TypeCode.STRING)],
            ["units", scalar(TypeCode.STRING)],
          ]),
        ],
      ]),
      false,
    );
  } else {
    const elem = ELEM[pv.kind] ?? TypeCode.FLOAT64;
    s = array
      ? shape(numericNt("epics:nt/NTScalarArray:1.0", scalarArray(elem), elem), false)
      : shape(numericNt("epics:nt/NTScalar:1.0", scalar(elem), elem), false);
  }
  shapes.set(key, s);
  return s;
}

/** The leaves a full update of `pv` sends (shared sets: do not modify). */
export function fullBits(s: NtShape, pv: Pv): BitSet {
  const a = pv.meta.alarm;
  if (a === undefined) return s.full;
  const set =
    a.hihi !== undefined ||
    a.high !== undefined ||
    a.low !== undefined ||
    a.lolo !== undefined ||
    a.hyst !== undefined;
  return set ? s.fullAlarm : s.full;
}

/**
 * `select` restricted to what a full update of `pv` sends. `selectsAll` (the usual request) returns
 * the shared set itself, so monitors' first updates share their encoding.
 */
export function fullSelection(s: NtShape, pv: Pv, select: BitSet, selectsAll: boolean): BitSet {
  const full = fullBits(s, pv);
  return selectsAll ? full : select.and(full);
}

const changedCache = new WeakMap<NtShape, BitSet[]>();

/** Changed leaves for a DBE event mask (shared and cached per shape: do not modify). */
export function changedBits(s: NtShape, mask: number): BitSet {
  let byMask = changedCache.get(s);
  if (!byMask) {
    byMask = [];
    changedCache.set(s, byMask);
  }
  const m = mask & 0xf;
  let b = byMask[m];
  if (b) return b;
  b = new BitSet();
  // DBE_LOG (archive deadband) alone is not a monitor event: like CA's default mask and QSRV's,
  // monitors follow DBE_VALUE (MDEL), DBE_ALARM and DBE_PROPERTY.
  if (m & DBE.VALUE) b.or(s.value).or(s.time);
  if (m & DBE.ALARM) b.or(s.alarm).or(s.time);
  if (m & DBE.PROPERTY) b.or(s.property);
  byMask[m] = b;
  return b;
}

const encoded = new WeakMap<StructValue, Map<BitSet, Uint8Array>>();
const scratch = new Writer(4096, true);

/**
 * The BitSet + partial value of an update, encoded once per value snapshot and bit set and shared
 * by every subscriber that sends the same (the usual case: many clients, same request).
 */
export function encodedUpdate(type: TypeDesc, value: StructValue, bits: BitSet): Uint8Array {
  let byBits = encoded.get(value);
  if (!byBits) {
    byBits = new Map();
    encoded.set(value, byBits);
  }
  // Keyed by the set's identity: subscribers that share a cached change set share the bytes.
  let b = byBits.get(bits);
  if (b) return b;
  scratch.pos = 0;
  bits.encode(scratch);
  encodePartial(scratch, type, value, bits);
  b = scratch.bytes();
  if (byBits.size < 8) byBits.set(bits, b);
  return b;
}

const CONDITION_NAMES = Object.fromEntries(
  Object.entries(AlarmStatus).map(([k, v]) => [v, k === "NO_ALARM" ? "" : k]),
) as Record<number, string>;

/** NT alarm.status (0 NONE, 1 DEVICE, 2 DRIVER, 3 RECORD, 4 DB, 6 UNDEFINED) from the EPICS condition. */
export function ntAlarmStatus(cond: number): number {
  switch (cond) {
    case AlarmStatus.NO_ALARM:
      return 0;
    case AlarmStatus.READ:
    case AlarmStatus.WRITE:
    case AlarmStatus.HIHI:
    case AlarmStatus.HIGH:
    case AlarmStatus.LOLO:
    case AlarmStatus.LOW:
    case AlarmStatus.STATE:
    case AlarmStatus.COS:
    case AlarmStatus.HWLIMIT:
      return 1;
    case AlarmStatus.COMM:
    case AlarmStatus.TIMEOUT:
    case AlarmStatus.UDF:
      return 2;
    case AlarmStatus.CALC:
    case AlarmStatus.SCAN:
    case AlarmStatus.LINK:
    case AlarmStatus.SOFT:
    case AlarmStatus.BAD_SUB:
      return 3;
    case AlarmStatus.DISABLE:
    case AlarmStatus.SIMM:
    case AlarmStatus.READ_ACCESS:
    case AlarmStatus.WRITE_ACCESS:
      return 4;
    default:
      return 6;
  }
}

const cache = new WeakMap<Pv, { gen: number; value: StructValue }>();

/** The PV's current value as its normative-type structure (cached per PV generation). */
export function ntValue(pv: Pv): StructValue {
  const c = cache.get(pv);
  if (c && c.gen === pv.generation) return c.value;
  const value = buildValue(pv);
  cache.set(pv, { gen: pv.generation, value });
  return value;
}

function buildValue(pv: Pv): StructValue {
  const st = pv.state;
  const m = pv.meta;
  const alarm = {
    severity: st.severity,
    status: ntAlarmStatus(st.status),
    message: CONDITION_NAMES[st.status] ?? "",
  };
  const timeStamp = {
    secondsPastEpoch: st.timestamp.sec,
    nanoseconds: st.timestamp.nsec,
    userTag: 0,
  };
  if (pv.kind === "enum") {
    return {
      value: { index: st.value, choices: m.states ?? [] },
      alarm,
      timeStamp,
      display: { description: m.description ?? "" },
    };
  }
  if (pv.kind === "string") {
    return {
      value: st.value,
      alarm,
      timeStamp,
      display: { description: m.description ?? "", units: m.units ?? "" },
    };
  }
  const a = m.alarm ?? {};
  const lim = (x: number | undefined) => x ?? Number.NaN;
  return {
    value: pv.count > 1 ? st.value : scalarOf(st.value),
    alarm,
    timeStamp,
    display: {
      limitLow: m.displayLow ?? 0,
      limitHigh: m.displayHigh ?? 0,
      description: m.description ?? "",
      units: m.units ?? "",
      precision: m.precision ?? 0,
      form: { index: 0, choices: FORM_CHOICES },
    },
    control: { limitLow: m.controlLow ?? 0, limitHigh: m.controlHigh ?? 0, minStep: 0 },
    valueAlarm: {
      active:
        a.hihi !== undefined || a.high !== undefined || a.low !== undefined || a.lolo !== undefined,
      lowAlarmLimit: lim(a.lolo),
      lowWarningLimit: lim(a.low),
      highWarningLimit: lim(a.high),
      highAlarmLimit: lim(a.hihi),
      lowAlarmSeverity: a.lolo !== undefined ? (a.llsv ?? 2) : 0,
      lowWarningSeverity: a.low !== undefined ? (a.lsv ?? 1) : 0,
      highWarningSeverity: a.high !== undefined ? (a.hsv ?? 1) : 0,
      highAlarmSeverity: a.hihi !== undefined ? (a.hhsv ?? 2) : 0,
      hysteresis: a.hyst ?? 0,
    },
  };
}

function scalarOf(v: PvValue): number | string {
  if (typeof v === "number" || typeof v === "string") return v;
  return v.length > 0 ? (v[0] ?? 0) : 0;
}

/**
 * The value a PUT writes, from the decoded partial structure: `value` (or `value.index` for an
 * NTEnum). Undefined when the PUT did not set it.
 */
export function putValue(s: NtShape, bits: BitSet, data: StructValue): unknown {
  if (s.isEnum) {
    if (!bits.get(0) && !bits.get(1) && !bits.get(s.valueBit)) return undefined;
    const v = data.value as StructValue | undefined;
    return v?.index;
  }
  if (!bits.get(0) && !bits.get(s.valueBit)) return undefined;
  return data.value;
}
