import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SCHEMA_FILE, schemaText } from "../../scripts/gen-schema.ts";
import {
  defaultPvDefs,
  loadPluginConfig,
  type PluginConfig,
  parsePluginConfig,
  resolveParameters,
} from "../../src/plugins/config.ts";
import { MAX_PLUGIN_CONFIG_BYTES, PluginConfigError } from "../../src/plugins/config-schema.ts";
import { AlarmStatus, PvRegistry, PvWriteError, Severity } from "../../src/pv/index.ts";

const SEED = `
parameters:
  mode: continuous
  interval: 1.0
  threshold: 75.0

pvs:
  inputs:
    SETPOINT:
      type: float
      value: 50.0
      unit: "%"
      prec: 2
      low: 0
      high: 100
  outputs:
    READING:
      type: float
      value: 0.0
      unit: "arb"
      prec: 3
    ALARM:
      type: bool
      value: 0
      znam: "OK"
      onam: "ALARM"
`;

/** Builds the PVs of a config in a real registry, as the runtime does. */
function materialize(cfg: PluginConfig, prefix = "T:P") {
  const reg = new PvRegistry();
  for (const d of cfg.pvs) reg.add({ name: `${prefix}:${d.name}`, ...d.spec });
  return reg;
}

function errorOf(text: string, kind: "task" | "job" = "task"): PluginConfigError {
  try {
    parsePluginConfig(text, "/repo/plug/config.yaml", kind);
  } catch (e) {
    if (e instanceof PluginConfigError) return e;
    throw e;
  }
  throw new Error("expected a PluginConfigError");
}

describe("config.yaml: the seed's example", () => {
  test("parses to PV definitions with the seed's meaning of each field", () => {
    const cfg = parsePluginConfig(SEED, "config.yaml", "task");
    expect(cfg.file).toBe("config.yaml");
    expect(cfg.parameters).toEqual({ mode: "continuous", interval: 1, threshold: 75 });
    expect(cfg.pvs).toEqual([
      {
        name: "SETPOINT",
        direction: "input",
        autosave: true,
        spec: {
          kind: "double",
          writable: true,
          initial: 50,
          meta: { units: "%", precision: 2, displayLow: 0, displayHigh: 100 },
        },
      },
      {
        name: "READING",
        direction: "output",
        autosave: false,
        spec: { kind: "double", writable: false, initial: 0, meta: { units: "arb", precision: 3 } },
      },
      {
        name: "ALARM",
        direction: "output",
        autosave: false,
        spec: { kind: "enum", writable: false, initial: 0, meta: { states: ["OK", "ALARM"] } },
      },
    ]);
  });

  test("the PVs build in a real registry: inputs writable, outputs refuse client writes", async () => {
    const reg = materialize(parsePluginConfig(SEED, "config.yaml", "task"));
    const sp = reg.get("T:P:SETPOINT")!;
    await sp.write(42.5, {});
    expect(sp.value).toBe(42.5);
    const reading = reg.get("T:P:READING")!;
    const err = await reading.write(1, {}).catch((e) => e);
    expect(err).toBeInstanceOf(PvWriteError);
    expect((err as PvWriteError).code).toBe("readonly");
    expect(reg.get("T:P:ALARM")!.meta.states).toEqual(["OK", "ALARM"]);
  });

  test("an empty file, comments only, or null sections give an empty config", () => {
    for (const text of [
      "",
      "# nothing\n",
      "parameters:\npvs:\n",
      "pvs:\n  inputs:\n  outputs:\n",
    ]) {
      const cfg = parsePluginConfig(text, "c.yaml", "job");
      expect(cfg.pvs).toEqual([]);
      expect(cfg.parameters).toEqual({});
    }
  });
});

describe("config.yaml: every type and field", () => {
  test("int, string, char, enum with severities, bool defaults", () => {
    const cfg = parsePluginConfig(
      `
pvs:
  inputs:
    COUNT: {type: int, value: -7, unit: cts, low: -10, high: 10, drvl: -8, drvh: 8, desc: "a counter"}
    NAME: {type: string, value: "hello"}
    BYTE: {type: char, value: 200}
    MODE:
      type: enum
      value: Fast
      states: [Off, Slow, {name: Fast, severity: MINOR}, {name: Broken, severity: MAJOR}]
    FLAG: {type: bool, value: true}
  outputs:
    SAVED: {type: string, autosave: true}
`,
      "c.yaml",
      "task",
    );
    const by = Object.fromEntries(cfg.pvs.map((d) => [d.name, d]));
    expect(by.COUNT!.spec).toEqual({
      kind: "long",
      writable: true,
      initial: -7,
      meta: {
        units: "cts",
        displayLow: -10,
        displayHigh: 10,
        controlLow: -8,
        controlHigh: 8,
        description: "a counter",
      },
    });
    expect(by.NAME!.spec.kind).toBe("string");
    expect(by.BYTE!.spec.kind).toBe("char");
    expect(by.MODE!.spec.initial).toBe(2);
    expect(by.MODE!.spec.meta!.states).toEqual(["Off", "Slow", "Fast", "Broken"]);
    expect(by.MODE!.spec.meta!.stateSeverity).toEqual([0, 0, 1, 2]);
    expect(by.FLAG!.spec.meta!.states).toEqual(["0", "1"]);
    expect(by.FLAG!.spec.initial).toBe(1);
    expect(by.SAVED!.autosave).toBe(true);
    expect(by.SAVED!.direction).toBe("output");
    const reg = materialize(cfg);
    const mode = reg.get("T:P:MODE")!;
    expect(mode.severity).toBe(Severity.MINOR);
    expect(mode.status).toBe(AlarmStatus.STATE);
  });

  test("drive limits are enforced on client writes", async () => {
    const cfg = parsePluginConfig(
      "pvs:\n  inputs:\n    SP: {type: float, value: 1, drvl: 0, drvh: 10}\n",
      "c.yaml",
      "task",
    );
    const sp = materialize(cfg).get("T:P:SP")!;
    const err = await sp.write(11, {}).catch((e) => e);
    expect(err).toBeInstanceOf(PvWriteError);
    expect(sp.value).toBe(1);
    await sp.write(10, {});
    expect(sp.value).toBe(10);
  });

  test("alarm limits with severities and hysteresis raise alarms in the PV", () => {
    const cfg = parsePluginConfig(
      `
pvs:
  outputs:
    TEMP:
      type: float
      value: 95
      low: 0
      high: 200
      alarm: {lolo: 5, low: 10, high: 80, hihi: 90, hhsv: INVALID, hsv: MAJOR, lsv: MINOR, llsv: MAJOR, hyst: 2}
      mdel: 0.5
      adel: -1
`,
      "c.yaml",
      "task",
    );
    expect(cfg.pvs[0]!.spec.meta).toEqual({
      displayLow: 0,
      displayHigh: 200,
      mdel: 0.5,
      adel: -1,
      alarm: { lolo: 5, low: 10, high: 80, hihi: 90, hhsv: 3, hsv: 2, lsv: 1, llsv: 2, hyst: 2 },
    });
    const pv = materialize(cfg).get("T:P:TEMP")!;
    expect(pv.status).toBe(AlarmStatus.HIHI);
    expect(pv.severity).toBe(Severity.INVALID);
    pv.post(85);
    expect(pv.status).toBe(AlarmStatus.HIGH);
    expect(pv.severity).toBe(Severity.MAJOR);
  });

  test("arrays: float[] with count, int[] sized by its value, char[] from a string, count on a scalar type", () => {
    const cfg = parsePluginConfig(
      `
pvs:
  outputs:
    WAVE: {type: "float[]", count: 1000, value: [1.5, 2.5], prec: 1}
    IDS: {type: "int[]", value: [1, 2, 3]}
    TEXT: {type: "char[]", value: "long text beyond forty characters is fine here"}
    BUF: {type: char, count: 256}
    SPEC: {type: float, count: 8}
`,
      "c.yaml",
      "task",
    );
    const by = Object.fromEntries(cfg.pvs.map((d) => [d.name, d.spec]));
    expect(by.WAVE!.count).toBe(1000);
    expect(by.WAVE!.initial).toEqual(Float64Array.from([1.5, 2.5]));
    expect(by.IDS!.count).toBe(3);
    expect(by.IDS!.initial).toEqual(Int32Array.from([1, 2, 3]));
    expect(by.TEXT!.count).toBe(47);
    expect(by.BUF!.count).toBe(256);
    expect(by.SPEC!.count).toBe(8);
    const reg = materialize(cfg);
    expect(reg.get("T:P:WAVE")!.length).toBe(2);
    expect(reg.get("T:P:TEXT")!.length).toBe(47);
    expect(reg.get("T:P:IDS")!.value).toEqual(Int32Array.from([1, 2, 3]));
  });

  test("a job may declare PVs named like task defaults (RUN, ENABLE); a task may not", () => {
    const text = "pvs:\n  inputs:\n    RUN: {type: int}\n    ENABLE: {type: int}\n";
    expect(parsePluginConfig(text, "c.yaml", "job").pvs.map((p) => p.name)).toEqual([
      "RUN",
      "ENABLE",
    ]);
    expect(errorOf(text, "task").message).toContain("clashes with the default task PV RUN");
  });
});

// One row per error path: the YAML and what the message must say (file, path, expectation).
const ERRORS: [string, string, string[]][] = [
  [
    "top-level unknown key",
    "parameter:\n  a: 1\n",
    ["parameter: unknown key", "did you mean 'parameters'"],
  ],
  ["top-level not a mapping", "- a\n- b\n", ["expected a mapping with `parameters` and/or `pvs`"]],
  [
    "unknown PV key with hint",
    "pvs:\n  inputs:\n    SP: {type: float, prc: 2}\n",
    ["pvs.inputs.SP.prc: unknown key", "did you mean 'prec'"],
  ],
  [
    "alarm limit at the top level",
    "pvs:\n  inputs:\n    SP: {type: float, hihi: 2}\n",
    ["pvs.inputs.SP.hihi", "alarm:"],
  ],
  [
    "unknown pvs group",
    "pvs:\n  input:\n    SP: {type: float}\n",
    ["pvs.input: unknown key", "did you mean 'inputs'"],
  ],
  [
    "missing type",
    "pvs:\n  inputs:\n    SP: {value: 1}\n",
    ["pvs.inputs.SP.type: missing", "one of float, int"],
  ],
  [
    "bad type",
    "pvs:\n  inputs:\n    SP: {type: double}\n",
    ["pvs.inputs.SP.type: expected one of float", "got 'double'"],
  ],
  [
    "PV not a mapping",
    "pvs:\n  inputs:\n    SP: 3\n",
    ["pvs.inputs.SP: expected a mapping describing a PV"],
  ],
  [
    "prec not an integer",
    "pvs:\n  inputs:\n    SP: {type: float, prec: 1.5}\n",
    ["pvs.inputs.SP.prec: expected an integer 0..17, got 1.5"],
  ],
  [
    "prec too big",
    "pvs:\n  inputs:\n    SP: {type: float, prec: 18}\n",
    ["pvs.inputs.SP.prec: expected an integer 0..17"],
  ],
  [
    "prec on int",
    "pvs:\n  inputs:\n    SP: {type: int, prec: 2}\n",
    ["pvs.inputs.SP.prec: not valid for type int"],
  ],
  [
    "unit on string",
    "pvs:\n  inputs:\n    S: {type: string, unit: mm}\n",
    ["pvs.inputs.S.unit: not valid for type string"],
  ],
  [
    "unit too long",
    "pvs:\n  inputs:\n    SP: {type: float, unit: millimetres}\n",
    ["pvs.inputs.SP.unit: expected a string of at most 7"],
  ],
  [
    "multi-byte unit too long",
    "pvs:\n  inputs:\n    SP: {type: float, unit: µµµµ}\n",
    ["pvs.inputs.SP.unit: longer than 7 bytes"],
  ],
  [
    "low not a number",
    "pvs:\n  inputs:\n    SP: {type: float, low: zero}\n",
    ["pvs.inputs.SP.low: expected a number, got 'zero'"],
  ],
  [
    "low above high",
    "pvs:\n  inputs:\n    SP: {type: float, low: 5, high: 1}\n",
    ["pvs.inputs.SP.low: display low 5 is above high 1"],
  ],
  [
    "drvl above drvh",
    "pvs:\n  inputs:\n    SP: {type: float, drvl: 5, drvh: 1}\n",
    ["pvs.inputs.SP.drvl: drive low 5 is above drvh 1"],
  ],
  [
    "value outside drive limits",
    "pvs:\n  inputs:\n    SP: {type: float, value: 20, drvh: 10}\n",
    ["pvs.inputs.SP.value: 20 is outside the drive limits"],
  ],
  [
    "drvl on an array",
    "pvs:\n  inputs:\n    W: {type: 'float[]', count: 3, drvl: 1}\n",
    ["pvs.inputs.W.drvl: not valid for type float[]"],
  ],
  [
    "desc too long",
    `pvs:\n  inputs:\n    SP: {type: float, desc: "${"d".repeat(41)}"}\n`,
    ["pvs.inputs.SP.desc: expected a string of at most 40"],
  ],
  [
    "alarm unknown key",
    "pvs:\n  inputs:\n    SP: {type: float, alarm: {hihigh: 3}}\n",
    ["pvs.inputs.SP.alarm.hihigh: unknown key", "did you mean 'hihi'"],
  ],
  [
    "alarm limits out of order",
    "pvs:\n  inputs:\n    SP: {type: float, alarm: {low: 5, lolo: 6}}\n",
    ["pvs.inputs.SP.alarm.low: 5 is below alarm.lolo (6)"],
  ],
  [
    "bad severity",
    "pvs:\n  inputs:\n    SP: {type: float, alarm: {hihi: 5, hhsv: major}}\n",
    ["pvs.inputs.SP.alarm.hhsv: expected one of NO_ALARM, MINOR, MAJOR, INVALID, got 'major'"],
  ],
  [
    "negative hysteresis",
    "pvs:\n  inputs:\n    SP: {type: float, alarm: {hyst: -1}}\n",
    ["pvs.inputs.SP.alarm.hyst: expected a number >= 0"],
  ],
  [
    "alarm on a string",
    "pvs:\n  inputs:\n    S: {type: string, alarm: {high: 1}}\n",
    ["pvs.inputs.S.alarm: not valid for type string"],
  ],
  [
    "mdel not a number",
    "pvs:\n  inputs:\n    SP: {type: float, mdel: [1]}\n",
    ["pvs.inputs.SP.mdel: expected a number, got a list"],
  ],
  [
    "znam on float",
    "pvs:\n  inputs:\n    SP: {type: float, znam: Off}\n",
    ["pvs.inputs.SP.znam: not valid for type float (only for bool)"],
  ],
  [
    "onam too long",
    `pvs:\n  inputs:\n    B: {type: bool, onam: "${"o".repeat(26)}"}\n`,
    ["pvs.inputs.B.onam: expected a string of at most 25"],
  ],
  [
    "bool value not a state",
    "pvs:\n  inputs:\n    B: {type: bool, znam: Off, onam: On, value: Maybe}\n",
    ["pvs.inputs.B.value: expected a state index 0..1 or one of 'Off', 'On', got 'Maybe'"],
  ],
  [
    "bool value 2",
    "pvs:\n  inputs:\n    B: {type: bool, value: 2}\n",
    ["pvs.inputs.B.value: expected a state index 0..1"],
  ],
  [
    "enum without states",
    "pvs:\n  inputs:\n    E: {type: enum}\n",
    ["pvs.inputs.E.states: missing; type enum needs `states`"],
  ],
  [
    "enum with 17 states",
    `pvs:\n  inputs:\n    E: {type: enum, states: [${Array.from({ length: 17 }, (_, i) => `s${i}`).join(", ")}]}\n`,
    ["pvs.inputs.E.states: expected a list of 1..16 states"],
  ],
  [
    "enum empty states",
    "pvs:\n  inputs:\n    E: {type: enum, states: []}\n",
    ["pvs.inputs.E.states: expected a list of 1..16 states"],
  ],
  [
    "enum state too long",
    `pvs:\n  inputs:\n    E: {type: enum, states: ["${"x".repeat(26)}"]}\n`,
    ["pvs.inputs.E.states[0]: expected a state name (at most 25 characters)"],
  ],
  [
    "enum state bad severity",
    "pvs:\n  inputs:\n    E: {type: enum, states: [a, {name: b, severity: MAJR}]}\n",
    ["pvs.inputs.E.states[1].severity: expected one of NO_ALARM"],
  ],
  [
    "enum state unknown key",
    "pvs:\n  inputs:\n    E: {type: enum, states: [{name: b, sev: MAJOR}]}\n",
    ["pvs.inputs.E.states[0].sev: unknown key"],
  ],
  [
    "enum duplicate states",
    "pvs:\n  inputs:\n    E: {type: enum, states: [a, a]}\n",
    ["pvs.inputs.E.states[1]: duplicate state name 'a'"],
  ],
  [
    "enum value index out of range",
    "pvs:\n  inputs:\n    E: {type: enum, states: [a, b], value: 2}\n",
    ["pvs.inputs.E.value: expected a state index 0..1 or one of 'a', 'b', got 2"],
  ],
  [
    "states on int",
    "pvs:\n  inputs:\n    I: {type: int, states: [a]}\n",
    ["pvs.inputs.I.states: not valid for type int (only for enum)"],
  ],
  [
    "int value not an integer",
    "pvs:\n  inputs:\n    I: {type: int, value: 1.5}\n",
    ["pvs.inputs.I.value: expected a 32-bit integer, got 1.5"],
  ],
  [
    "int value beyond 32 bits",
    "pvs:\n  inputs:\n    I: {type: int, value: 4294967296}\n",
    ["pvs.inputs.I.value: expected a 32-bit integer"],
  ],
  [
    "float value a string",
    "pvs:\n  inputs:\n    F: {type: float, value: high}\n",
    ["pvs.inputs.F.value: expected a number, got 'high'"],
  ],
  [
    "char value out of range",
    "pvs:\n  inputs:\n    C: {type: char, value: 300}\n",
    ["pvs.inputs.C.value: expected an integer 0..255, got 300"],
  ],
  [
    "string value too long",
    `pvs:\n  inputs:\n    S: {type: string, value: "${"s".repeat(40)}"}\n`,
    ["pvs.inputs.S.value: expected a string of at most 39 bytes"],
  ],
  [
    "string value a list",
    "pvs:\n  inputs:\n    S: {type: string, value: [a]}\n",
    ["pvs.inputs.S.value: expected a string, got a list"],
  ],
  [
    "array without count",
    "pvs:\n  inputs:\n    W: {type: 'float[]'}\n",
    ["pvs.inputs.W.count: missing; type float[] needs `count`"],
  ],
  [
    "array value longer than count",
    "pvs:\n  inputs:\n    W: {type: 'float[]', count: 2, value: [1, 2, 3]}\n",
    ["pvs.inputs.W.value: expected a list of at most 2 elements"],
  ],
  [
    "array element not a number",
    "pvs:\n  inputs:\n    W: {type: 'int[]', value: [1, x]}\n",
    ["pvs.inputs.W.value[1]: expected a number, got 'x'"],
  ],
  [
    "count zero",
    "pvs:\n  inputs:\n    W: {type: 'float[]', count: 0}\n",
    ["pvs.inputs.W.count: expected an integer 1..4194304, got 0"],
  ],
  [
    "count huge",
    "pvs:\n  inputs:\n    W: {type: 'float[]', count: 1000000000}\n",
    ["pvs.inputs.W.count: expected an integer 1..4194304"],
  ],
  [
    "count on a string",
    "pvs:\n  inputs:\n    S: {type: string, count: 2}\n",
    ["pvs.inputs.S.count: not valid for type string"],
  ],
  [
    "char[] string longer than count",
    "pvs:\n  inputs:\n    T: {type: 'char[]', count: 4, value: hello}\n",
    ["pvs.inputs.T.value: expected a string of at most 3 bytes"],
  ],
  [
    "autosave not a boolean",
    "pvs:\n  inputs:\n    SP: {type: float, autosave: yes}\n",
    ["pvs.inputs.SP.autosave: expected true or false, got 'yes'"],
  ],
  [
    "invalid PV name (space)",
    "pvs:\n  inputs:\n    'SET POINT': {type: float}\n",
    ["pvs.inputs.SET POINT: invalid PV name"],
  ],
  [
    "invalid PV name (leading dash)",
    "pvs:\n  inputs:\n    -X: {type: float}\n",
    ["pvs.inputs.-X: invalid PV name"],
  ],
  [
    "PV name too long",
    `pvs:\n  inputs:\n    ${"N".repeat(61)}: {type: float}\n`,
    ["invalid PV name; expected 1..60 characters"],
  ],
  [
    "PV name with a dot (the field separator)",
    "pvs:\n  inputs:\n    SP.VAL: {type: float}\n",
    ["pvs.inputs.SP.VAL: invalid PV name"],
  ],
  ["PV name with a quote", "pvs:\n  inputs:\n    'A\"B': {type: float}\n", ["invalid PV name"]],
  [
    "clash with a default PV",
    "pvs:\n  outputs:\n    STATUS: {type: int}\n",
    ["pvs.outputs.STATUS: 'STATUS' clashes with the default task PV STATUS"],
  ],
  [
    "clash with a default PV in another case",
    "pvs:\n  outputs:\n    message: {type: string}\n",
    ["pvs.outputs.message: 'message' clashes with the default task PV MESSAGE"],
  ],
  [
    "same name in inputs and outputs",
    "pvs:\n  inputs:\n    SP: {type: float}\n  outputs:\n    sp: {type: float}\n",
    ["pvs.outputs.sp: 'sp' is already declared at pvs.inputs.SP"],
  ],
  [
    "inputs not a mapping",
    "pvs:\n  inputs: [SP]\n",
    ["pvs.inputs: expected a mapping of PV name to PV definition, got a list"],
  ],
  [
    "parameters not a mapping",
    "parameters: [1, 2]\n",
    ["parameters: expected a mapping of parameter names to values, got a list"],
  ],
  [
    "bad mode",
    "parameters:\n  mode: cont\n",
    ["parameters.mode: expected 'continuous' or 'triggered', got 'cont'"],
  ],
  [
    "interval zero",
    "parameters:\n  interval: 0\n",
    ["parameters.interval: expected a number of seconds 0.001..604800, got 0"],
  ],
  [
    "interval a string",
    "parameters:\n  interval: fast\n",
    ["parameters.interval: expected a number of seconds", "got 'fast'"],
  ],
  [
    "duplicate key",
    "pvs:\n  inputs:\n    SP: {type: float}\n    SP: {type: int}\n",
    ["line 4", "Map keys must be unique"],
  ],
  [
    "YAML syntax error",
    "pvs:\n  inputs:\n    SP: {type: float\n  outputs: x\n",
    ["YAML syntax error at line 4, column"],
  ],
  [
    "YAML bad indentation",
    "parameters:\n  a: 1\n   b: 2\n",
    ["YAML syntax error at line 2, column 6"],
  ],
  ["tab indentation", "pvs:\n\tinputs: {}\n", ["YAML syntax error at line 2"]],
];

describe("config.yaml: every error names the file, the field path and the expectation", () => {
  test.each(ERRORS)("%s", (_name, text, expected) => {
    const e = errorOf(text);
    expect(e.message.startsWith("/repo/plug/config.yaml: ")).toBe(true);
    for (const s of expected) expect(e.message).toContain(s);
    expect(e.file).toBe("/repo/plug/config.yaml");
    expect(e.expected.length).toBeGreaterThan(0);
  });

  test("the error's path field is the dotted field path", () => {
    const e = errorOf("pvs:\n  inputs:\n    SETPOINT: {type: float, prec: -1}\n");
    expect(e.path).toBe("pvs.inputs.SETPOINT.prec");
    expect(e.expected).toBe("an integer 0..17");
  });
});

describe("config.yaml: huge and hostile files", () => {
  test("a file over the size cap is refused before parsing", () => {
    const text = `parameters:\n  blob: "${"x".repeat(MAX_PLUGIN_CONFIG_BYTES)}"\n`;
    expect(errorOf(text).message).toContain("file too large");
  });

  test("an alias bomb (billion laughs) is refused", () => {
    const lines = ["parameters:", `  l0: &l0 [${Array(10).fill("lol").join(", ")}]`];
    for (let i = 1; i < 9; i++) {
      lines.push(
        `  l${i}: &l${i} [${Array(10)
          .fill(`*l${i - 1}`)
          .join(", ")}]`,
      );
    }
    expect(errorOf(lines.join("\n")).message).toContain(
      "YAML refused: Excessive alias count indicates a resource exhaustion attack",
    );
  });

  test("deep flow nesting is refused without blowing the stack", () => {
    const text = `parameters: {deep: ${"[".repeat(50_000)}${"]".repeat(50_000)}}\n`;
    expect(errorOf(text).message).toContain("nesting too deep");
  });

  test("deep block nesting is refused", () => {
    let text = "parameters:\n";
    for (let i = 1; i < 120; i++) text += `${"  ".repeat(i)}k${i}:\n`;
    text += `${"  ".repeat(120)}v: 1\n`;
    expect(errorOf(text).message).toContain("nesting too deep");
  });

  test("deep block sequences and complex keys on one line are refused", () => {
    expect(errorOf(`${"- ".repeat(100_000)}x\n`).message).toContain("nesting too deep");
    expect(errorOf(`${"? ".repeat(50_000)}x\n`).message).toContain("nesting too deep");
    expect(errorOf(`parameters: {a: [x'y ${"[".repeat(100_000)}]}\n`).message).toContain(
      "nesting too deep",
    );
  });

  test("brackets inside strings and comments do not count as nesting", () => {
    const text = `parameters:\n  s: "${"[".repeat(500)}"\n  t: it's [[[[ fine # ${"{".repeat(500)}\n`;
    expect(parsePluginConfig(text, "c.yaml", "task").parameters).toEqual({
      s: "[".repeat(500),
      t: "it's [[[[ fine",
    });
  });

  test("more PVs than the cap are refused", () => {
    let text = "pvs:\n  outputs:\n";
    for (let i = 0; i <= 4096; i++) text += `    P${i}: {type: int}\n`;
    expect(errorOf(text).message).toContain("pvs.outputs: too many PVs (more than 4096)");
  });

  test("many PVs are fine up to the cap", () => {
    let text = "pvs:\n  outputs:\n";
    for (let i = 0; i < 500; i++) text += `    PV${i}: {type: int}\n`;
    expect(parsePluginConfig(text, "c.yaml", "task").pvs.length).toBe(500);
  });

  test("a document with an unknown tag or binary junk gives a clear error, not a crash", () => {
    expect(errorOf("parameters: !!js/function 'x'\n").message).toContain("config.yaml");
    expect(errorOf("\u0000\u0001\u0002: [\n").message).toContain("YAML");
  });

  test("a PV template anchor reused by 1000 PVs is fine", () => {
    let text = "pvs:\n  outputs:\n    P0: &pv {type: float, prec: 2, alarm: {high: 1, hihi: 2}}\n";
    for (let i = 1; i <= 1000; i++) text += `    P${i}: *pv\n`;
    expect(parsePluginConfig(text, "c.yaml", "task").pvs.length).toBe(1001);
  });

  test("aliases used sensibly still work", () => {
    const cfg = parsePluginConfig(
      "parameters: {a: &x [1, 2], b: *x}\npvs:\n  inputs:\n    P1: &pv {type: float, prec: 2}\n    P2: *pv\n",
      "c.yaml",
      "task",
    );
    expect(cfg.parameters).toEqual({ a: [1, 2], b: [1, 2] });
    expect(cfg.pvs.map((p) => p.spec.meta?.precision)).toEqual([2, 2]);
  });
});

describe("parameters", () => {
  const cfg = parsePluginConfig(
    "parameters:\n  mode: triggered\n  interval: 0.5\n  threshold: 75\n",
    "/p/config.yaml",
    "task",
  );

  test("defaults: continuous every 1.0 s", () => {
    const r = resolveParameters(parsePluginConfig("", "c.yaml", "task"));
    expect(r).toEqual({ parameters: {}, mode: "continuous", interval: 1 });
  });

  test("request overrides win key by key", () => {
    const r = resolveParameters(cfg, { threshold: 80, mode: "continuous", extra: "x" });
    expect(r.parameters).toEqual({ mode: "continuous", interval: 0.5, threshold: 80, extra: "x" });
    expect(r.mode).toBe("continuous");
    expect(r.interval).toBe(0.5);
  });

  test("a bad override names the request, a bad file value names the file", () => {
    expect(() => resolveParameters(cfg, { interval: -1 })).toThrow(
      "request parameters: parameters.interval: expected a number of seconds",
    );
    expect(() => resolveParameters(cfg, { mode: "sometimes" })).toThrow(
      "request parameters: parameters.mode: expected 'continuous' or 'triggered', got 'sometimes'",
    );
    const stale: PluginConfig = { parameters: { mode: 3 }, pvs: [], file: "/p/config.yaml" };
    expect(() => resolveParameters(stale)).toThrow("/p/config.yaml: parameters.mode");
  });
});

describe("default PVs", () => {
  test("a task gets ENABLE, STATUS, MESSAGE, CYCLE_COUNT, RUN as in the seed", () => {
    const defs = defaultPvDefs("task");
    expect(defs.map((d) => d.name)).toEqual(["ENABLE", "STATUS", "MESSAGE", "CYCLE_COUNT", "RUN"]);
    const reg = new PvRegistry();
    for (const d of defs) reg.add({ name: `X:${d.name}`, ...d.spec });
    expect(reg.get("X:ENABLE")!.value).toBe(1);
    expect(reg.get("X:ENABLE")!.writable).toBe(true);
    expect(reg.get("X:ENABLE")!.meta.states).toEqual(["Disabled", "Enabled"]);
    expect(reg.get("X:STATUS")!.meta.states).toEqual(["INIT", "RUN", "PAUSED", "END", "ERROR"]);
    expect(reg.get("X:STATUS")!.writable).toBe(false);
    expect(reg.get("X:MESSAGE")!.kind).toBe("string");
    expect(reg.get("X:CYCLE_COUNT")!.kind).toBe("long");
    expect(reg.get("X:RUN")!.writable).toBe(true);
    expect(reg.get("X:RUN")!.meta.states).toEqual(["0", "1"]);
    expect(defs.every((d) => !d.autosave)).toBe(true);
  });

  test("a job gets STATUS (IDLE/RUNNING/SUCCESS/FAILED) and MESSAGE", () => {
    const defs = defaultPvDefs("job");
    expect(defs.map((d) => d.name)).toEqual(["STATUS", "MESSAGE"]);
    expect(defs[0]!.spec.meta!.states).toEqual(["IDLE", "RUNNING", "SUCCESS", "FAILED"]);
  });

  test("callers get fresh objects (mutating one does not leak into the next)", () => {
    const a = defaultPvDefs("task");
    a[0]!.spec.meta!.states!.push("X");
    expect(defaultPvDefs("task")[0]!.spec.meta!.states).toEqual(["Disabled", "Enabled"]);
  });
});

describe("loadPluginConfig", () => {
  test("reads config.yaml, else config.yml, else gives an empty config", async () => {
    const dir = await mkdtemp(join(tmpdir(), "iocmng-pcfg-"));
    try {
      expect(await loadPluginConfig(dir, "task")).toEqual({ parameters: {}, pvs: [], file: null });
      await writeFile(join(dir, "config.yml"), "parameters: {a: 1}\n");
      const yml = await loadPluginConfig(dir, "task");
      expect(yml.parameters).toEqual({ a: 1 });
      expect(yml.file).toBe(join(dir, "config.yml"));
      await writeFile(join(dir, "config.yaml"), SEED);
      const yaml = await loadPluginConfig(dir, "task");
      expect(yaml.pvs.length).toBe(3);
      expect(yaml.file).toBe(join(dir, "config.yaml"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("errors name the file on disk; a directory or a huge file is refused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "iocmng-pcfg-"));
    try {
      await writeFile(join(dir, "config.yaml"), "pvs:\n  inputs:\n    X: {type: flt}\n");
      await expect(loadPluginConfig(dir, "task")).rejects.toThrow(
        `${join(dir, "config.yaml")}: pvs.inputs.X.type: expected one of float`,
      );
      await writeFile(join(dir, "config.yaml"), Buffer.alloc(MAX_PLUGIN_CONFIG_BYTES + 1, 0x20));
      await expect(loadPluginConfig(dir, "task")).rejects.toThrow("file too large");
      await rm(join(dir, "config.yaml"));
      await mkdir(join(dir, "config.yaml"));
      await expect(loadPluginConfig(dir, "task")).rejects.toThrow("not a regular file");
      await writeFile(join(dir, "plain-file"), "x");
      await expect(loadPluginConfig(join(dir, "plain-file"), "task")).rejects.toThrow(
        "plain-file: not a directory",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("JSON Schema for editors", () => {
  test("schema/plugin-config.schema.json is up to date (run bun scripts/gen-schema.ts)", () => {
    expect(readFileSync(SCHEMA_FILE, "utf8")).toBe(schemaText());
  });

  test("the schema describes every PV field and forbids unknown keys", () => {
    const s = JSON.parse(schemaText());
    const text = JSON.stringify(s);
    expect(text).not.toContain("x-expected");
    for (const f of [
      "znam",
      "onam",
      "states",
      "drvl",
      "drvh",
      "mdel",
      "adel",
      "hyst",
      "autosave",
    ]) {
      expect(text).toContain(`"${f}"`);
    }
    expect(s.additionalProperties).toBe(false);
  });
});
