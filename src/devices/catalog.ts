/**
 * Device types known to the device layer and the PV suffix of each signal, following the
 * conventions of infn-epics/infn-ophyd-hal (the Python iocmng's device library): a device's PVs
 * are its prefix (`{iocprefix}[:{iocroot}]:{device}`) plus the suffix listed here.
 */

/** One named PV of a device. */
export interface SignalSpec {
  /** Appended to the device prefix, e.g. ".RBV" or ":SA:SA_X_MONITOR". */
  suffix: string;
  /** Whether plugins may write it through the device (the server still decides). */
  writable: boolean;
}

/** How the device layer drives a device of this type. */
export type DeviceKind = "motor-record" | "tml-motor" | "generic";

/** A device type: its behaviour and its named signals. */
export interface DeviceTypeSpec {
  kind: DeviceKind;
  signals: Record<string, SignalSpec>;
}

const ro = (suffix: string): SignalSpec => ({ suffix, writable: false });
const rw = (suffix: string): SignalSpec => ({ suffix, writable: true });

/** EPICS motor record (asyn motors): `caput -c PREFIX.VAL` completes when the move is done. */
const MOTOR_RECORD: DeviceTypeSpec = {
  kind: "motor-record",
  signals: {
    setpoint: rw(".VAL"),
    readback: ro(".RBV"),
    doneMoving: ro(".DMOV"),
    moving: ro(".MOVN"),
    stop: rw(".STOP"),
    status: ro(".MSTA"),
    velocity: rw(".VELO"),
    acceleration: rw(".ACCL"),
    highLimit: rw(".HLM"),
    lowLimit: rw(".LLM"),
    units: ro(".EGU"),
    precision: ro(".PREC"),
  },
};

/** Technosoft TML motors: command words on ACT/ACTX_SP, motion state in MSTA bits. */
const TML_MOTOR: DeviceTypeSpec = {
  kind: "tml-motor",
  signals: {
    setpoint: rw(":VAL_SP"),
    readback: ro(":RBV"),
    status: ro(":MSTA"),
    state: ro(":STAT"),
    messages: rw(":MSGS"),
    action: rw(":ACT"),
    actionReadback: rw(":ACT_RB"),
    execute: rw(":ACTX_SP"),
    valueReadback: rw(":VAL_RB"),
    velocity: rw(":VELO_SP"),
    acceleration: rw(":ACCL_SP"),
    homeVelocity: rw(":HVEL_SP"),
    jogVelocity: rw(":JVEL_SP"),
  },
};

/** TML command and state words (tml_ophyd_motor). */
export const TML = { CMD_ABS_POS: 2, RUN: 1, STOP: 2, MOVING_BIT: 0x400 } as const;

const LIBERA_BPM: DeviceTypeSpec = {
  kind: "generic",
  signals: {
    x: ro(":SA:SA_X_MONITOR"),
    y: ro(":SA:SA_Y_MONITOR"),
    va: ro(":SA:SA_A_MONITOR"),
    vb: ro(":SA:SA_B_MONITOR"),
    vc: ro(":SA:SA_C_MONITOR"),
    vd: ro(":SA:SA_D_MONITOR"),
    sum: ro(":SA:SA_SUM_MONITOR"),
    counter: ro(":SA:SA_COUNTER_MONITOR"),
    threshold: ro(":ENV:ENV_ADCSP_THRESHOLD_MONITOR"),
    thresholdSetpoint: rw(":ENV:ENV_ADCSP_THRESHOLD_SP"),
    resetCounter: rw(":ENV:ENV_RESET_COUNTER_CMD"),
  },
};

const DANTE_PS: DeviceTypeSpec = {
  kind: "generic",
  signals: {
    current: rw(":current"),
    currentReadback: ro(":current_rb"),
    polarity: rw(":polarity"),
    polarityReadback: ro(":polarity_rb"),
    mode: rw(":mode"),
    modeReadback: ro(":mode_rb"),
  },
};

const io = (name: string, suffix: string, writable: boolean): DeviceTypeSpec => ({
  kind: "generic",
  signals: { [name]: { suffix, writable } },
});

/** Known (devgroup, devtype) pairs; the key is "devgroup/devtype". */
const TYPES: Record<string, DeviceTypeSpec> = {
  "mot/tml": TML_MOTOR,
  "mot/technosoft-asyn": TML_MOTOR,
  "mot/motor": MOTOR_RECORD,
  "mot/asyn": MOTOR_RECORD,
  "mot/generic": MOTOR_RECORD,
  "diag/bpm": LIBERA_BPM,
  "diag/libera-spe": LIBERA_BPM,
  "diag/libera-sppp": LIBERA_BPM,
  "mag/dante": DANTE_PS,
  "io/di": io("readback", ":DI", false),
  "io/do": io("setpoint", ":DO", true),
  "io/ai": io("readback", ":AI", false),
  "io/ao": io("setpoint", ":AO", true),
  "io/rtd": io("temperature", ":TEMP", false),
};

/**
 * The spec for a device: exact devgroup/devtype first, then the group's generic type (any other
 * motor is driven as a motor record, the default in infn-ophyd-hal), else a generic device with
 * no predefined signals (its PVs are still reachable by suffix).
 */
export function deviceType(devgroup: string, devtype: string | undefined): DeviceTypeSpec {
  return (
    TYPES[`${devgroup}/${devtype ?? ""}`] ??
    TYPES[`${devgroup}/generic`] ?? { kind: "generic", signals: {} }
  );
}

/** Every known "devgroup/devtype" key (for docs and diagnostics). */
export function knownDeviceTypes(): string[] {
  return Object.keys(TYPES);
}
