/**
 * Protocol-independent PV model types. Nothing here knows about Channel Access; the CA codec maps
 * these onto DBR types (double→DBR_DOUBLE, long→DBR_LONG, string→DBR_STRING, enum→DBR_ENUM,
 * char→DBR_CHAR). Alarm codes and the event mask bits use EPICS' numbering because every EPICS
 * protocol and tool shares it.
 */

/** Native value kinds a PV can hold; `count > 1` makes double/long/char an array. */
export type PvKind = "double" | "long" | "string" | "enum" | "char";

/** A PV's value: numbers for scalars (enum = state index), string, or a typed array for arrays. */
export type PvValue = number | string | Float64Array | Int32Array | Uint8Array;

/** EPICS alarm severities (alarm.h). */
export const Severity = { NO_ALARM: 0, MINOR: 1, MAJOR: 2, INVALID: 3 } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

/** EPICS alarm conditions (alarm.h epicsAlarmCondition). */
export const AlarmStatus = {
  NO_ALARM: 0,
  READ: 1,
  WRITE: 2,
  HIHI: 3,
  HIGH: 4,
  LOLO: 5,
  LOW: 6,
  STATE: 7,
  COS: 8,
  COMM: 9,
  TIMEOUT: 10,
  HWLIMIT: 11,
  CALC: 12,
  SCAN: 13,
  LINK: 14,
  SOFT: 15,
  BAD_SUB: 16,
  UDF: 17,
  DISABLE: 18,
  SIMM: 19,
  READ_ACCESS: 20,
  WRITE_ACCESS: 21,
} as const;
export type AlarmStatus = (typeof AlarmStatus)[keyof typeof AlarmStatus];

/** Monitor event mask bits (DBE_*), shared by every EPICS protocol. */
export const DBE = { VALUE: 1, LOG: 2, ALARM: 4, PROPERTY: 8 } as const;

/** Alarm limits of an analog PV, with the severity each raises and hysteresis (like ai/ao records). */
export interface AlarmLimits {
  hihi?: number;
  high?: number;
  low?: number;
  lolo?: number;
  /** Severity for HIHI (default MAJOR when hihi is set). */
  hhsv?: Severity;
  /** Severity for HIGH (default MINOR when high is set). */
  hsv?: Severity;
  /** Severity for LOW (default MINOR when low is set). */
  lsv?: Severity;
  /** Severity for LOLO (default MAJOR when lolo is set). */
  llsv?: Severity;
  /** Hysteresis: an alarm clears only once the value is this far back inside the limit. */
  hyst?: number;
}

/** Metadata served with GR/CTRL requests; a change posts DBE_PROPERTY to monitors. */
export interface PvMeta {
  units?: string;
  /** Digits after the decimal point (PREC); also used when a number is read as a string. */
  precision?: number;
  description?: string;
  /** Display limits (LOPR/HOPR). */
  displayLow?: number;
  displayHigh?: number;
  /** Control/drive limits (DRVL/DRVH): a write outside is refused. */
  controlLow?: number;
  controlHigh?: number;
  alarm?: AlarmLimits;
  /** Enum state strings (at most 16, each at most 25 bytes on the wire). */
  states?: string[];
  /** Severity raised while the enum sits in the state with that index (like mbbi ZRSV…FFSV). */
  stateSeverity?: Severity[];
  /** Monitor deadband (MDEL): DBE_VALUE posts only when |Δ| > mdel; negative = post every update. */
  mdel?: number;
  /** Archive deadband (ADEL): DBE_LOG posts only when |Δ| > adel; negative = post every update. */
  adel?: number;
  /** Refuse client writes of NaN and ±Infinity (always the case when drive limits are set). */
  finiteOnly?: boolean;
}

/** Everything needed to create a PV. */
export interface PvSpec {
  name: string;
  kind: PvKind;
  /** Maximum element count; 1 (default) for scalars. */
  count?: number;
  /** Whether protocol clients may write it (plugin code can always set it). */
  writable?: boolean;
  initial?: PvValue;
  meta?: PvMeta;
  /** Access security group (an ASG of the access security file); unset = DEFAULT. */
  asg?: string;
}

/** EPICS-style timestamp: POSIX seconds and nanoseconds (the CA codec shifts to the EPICS epoch). */
export interface Timestamp {
  sec: number;
  nsec: number;
}

/** A consistent snapshot of a PV's dynamic state. */
export interface PvState {
  value: PvValue;
  status: AlarmStatus;
  severity: Severity;
  timestamp: Timestamp;
}

/** Options of a server-side update (`Pv.post`). */
export interface PostOptions {
  /** Explicit alarm; when omitted the alarm is computed from the limits / state severities. */
  status?: AlarmStatus;
  severity?: Severity;
  timestamp?: Timestamp;
  /** Post even when nothing changed (still subject to deadbands unless forced mask given). */
  force?: boolean;
}

/** Who wrote: for logs and (later) access decisions. */
export interface WriteContext {
  user?: string;
  host?: string;
  /** Remote peer, e.g. "127.0.0.1:45678". */
  peer?: string;
}

/**
 * Called for every client write after validation. It may be async; throwing (or rejecting) refuses
 * the write with the error's message as reason. Returning resolves the write: the PV then takes
 * the written value, unless the handler already posted a different one.
 */
export type WriteHandler = (value: PvValue, ctx: WriteContext) => void | Promise<void>;

/** Listener of PV updates: `mask` holds the DBE bits this update triggers. */
export type PvListener = (mask: number) => void;

/** Thrown when a write is refused; `reason` is safe to show to the operator. */
export class PvWriteError extends Error {
  constructor(
    readonly reason: string,
    readonly code: "readonly" | "range" | "type" | "rejected" = "rejected",
  ) {
    super(reason);
    this.name = "PvWriteError";
  }
}
