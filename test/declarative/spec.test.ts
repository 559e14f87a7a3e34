/**
 * Parsing of the declarative config.yaml sections: 2.7.9's defaults and aliases, and a clear
 * error with the field path for everything malformed or hostile.
 */
import { describe, expect, test } from "bun:test";
import { parse as parseYaml } from "yaml";
import { declarativeExtraPvDefs, keepTaskPv, portPvDefs } from "../../src/declarative/pvdefs.ts";
import { isDeclarative, parseDeclarative } from "../../src/declarative/spec.ts";

type Rec = Record<string, unknown>;
const parse = (yaml: string) => {
  const cfg = parseYaml(yaml) as Rec;
  return parseDeclarative(cfg, (cfg.parameters ?? {}) as Rec, "2.7.9");
};
const refuse = (yaml: string): string => {
  try {
    parse(yaml);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("accepted");
};

describe("defaults and aliases of 2.7.9", () => {
  test("pv defaults, legacy pvs merged under arguments, mode alias of link_mode", () => {
    const s = parse(`
pvs:
  inputs: {A: {type: int, value: 3}, B: {value: 1.5}}
arguments:
  inputs: {A: {type: string, value: hi, link: "X:A", mode: monitor}}
  outputs: {F: {type: bool, value: true}}
`);
    expect(s.ports.map((p) => p.name)).toEqual(["B", "A", "F"]);
    const a = s.ports.find((p) => p.name === "A");
    expect(a?.type).toBe("string");
    expect(a?.linkMode).toBe("monitor");
    const b = s.ports.find((p) => p.name === "B");
    expect(b).toMatchObject({ type: "float", initial: 1.5, prec: 3, low: 0, high: 100, unit: "" });
    expect(s.ports.find((p) => p.name === "F")).toMatchObject({
      znam: "Off",
      onam: "On",
      initial: 1,
    });
    expect(s).toMatchObject({
      mode: "continuous",
      interval: 1,
      timeout: 5,
      retryInterval: 1,
      version: "2.7.9",
    });
    expect(b?.normalized).toEqual({
      type: "float",
      value: 1.5,
      unit: "",
      prec: 3,
      low: 0,
      high: 100,
    });
    expect(a?.normalized).toMatchObject({
      link: "X:A",
      link_mode: "monitor",
      trigger: false,
      mode: "monitor",
    });
  });
  test("mode is case-insensitive; triggered: true is the legacy form; retry_interval follows interval", () => {
    expect(parse("parameters: {mode: Reactive, interval: 3}")).toMatchObject({
      mode: "reactive",
      retryInterval: 3,
    });
    expect(parse("parameters: {triggered: true}").mode).toBe("triggered");
    expect(parse("parameters: {version: '1.2', timeout: 0.5}")).toMatchObject({
      version: "1.2",
      timeout: 0.5,
    });
  });
  test("isDeclarative recognises 2.7.9-only keys and leaves our own configs alone", () => {
    expect(
      isDeclarative(parseYaml("parameters: {mode: continuous}\npvs: {inputs: {A: {type: float}}}")),
    ).toBe(false);
    expect(isDeclarative(parseYaml("arguments: {}"))).toBe(true);
    expect(isDeclarative(parseYaml("pvs: {inputs: {A: {type: float, link: X}}}"))).toBe(true);
    expect(isDeclarative(parseYaml("parameters: {mode: reactive}"))).toBe(true);
    expect(isDeclarative(parseYaml("prefix: TRIG"))).toBe(true);
  });
  test("PV definitions: wired read-only, unwired inputs writable, alarm_on, default PVs per mode", () => {
    const s = parse(`
arguments:
  inputs: {w: {type: float, link: "X"}, u: {type: int}}
  outputs: {o: {type: bool, alarm_on: major, znam: A, onam: B}, f: {type: float, high: 5, alarm_on: MINOR}, wo: {type: int, link: Y}}
`);
    const defs = portPvDefs(s);
    expect(defs.map((d) => [d.name, d.spec.writable])).toEqual([
      ["w", false],
      ["u", true],
      ["o", false],
      ["f", false],
      ["wo", false],
    ]);
    expect(defs[2]?.spec.meta).toMatchObject({ states: ["A", "B"], stateSeverity: [0, 2] });
    expect(defs[3]?.spec.meta?.alarm).toEqual({ high: 5, hsv: 1 });
    const extra = declarativeExtraPvDefs(s).map((d) => d.name);
    expect(extra).toEqual([
      "VERSION",
      "CLEAR",
      "RESET",
      "CONN_INP",
      "CONN_INP_NAMES",
      "CONN_OUT",
      "CONN_OUT_NAMES",
    ]);
    expect(declarativeExtraPvDefs(s).find((d) => d.name === "CONN_INP_NAMES")?.spec.initial).toBe(
      "w",
    );
    expect(keepTaskPv("RUN", "continuous")).toBe(false);
    expect(keepTaskPv("RUN", "triggered")).toBe(true);
    expect(keepTaskPv("CYCLE_COUNT", "triggered")).toBe(false);
    expect(keepTaskPv("CYCLE_COUNT", "reactive")).toBe(true);
  });
});

describe("malformed and hostile configs are refused with the path", () => {
  const cases: [string, string][] = [
    ["arguments: [1, 2]", "arguments: expected a mapping"],
    ["arguments: {inputs: [a]}", "arguments.inputs: expected a mapping"],
    ["arguments: {inputs: {A: 3}}", "arguments.inputs.A: expected a mapping"],
    [
      "arguments: {inputs: {A: {type: enum}}}",
      "arguments.inputs.A.type: expected one of float, int, string, bool",
    ],
    ["arguments: {inputs: {A: {linkk: X}}}", "arguments.inputs.A.linkk: unknown field"],
    [
      "arguments: {inputs: {A: {link: X, link_mode: monitr}}}",
      "link_mode: expected one of poll, monitor",
    ],
    ["arguments: {inputs: {A: {link: X, link_mode: poll, mode: poll}}}", "not both"],
    ["arguments: {inputs: {A: {trigger: true}}}", "A.trigger: only meaningful with a link"],
    ["arguments: {inputs: {A: {link: 'a b'}}}", "A.link: not a PV name"],
    ["arguments: {inputs: {A: {buffer_size: 1000000}}}", "buffer_size: at most 100000"],
    ["arguments: {inputs: {A: {buffer_size: 2.5}}}", "buffer_size: expected an integer"],
    ["arguments: {inputs: {STATUS: {}}}", "STATUS is a PV the framework creates"],
    ["arguments: {inputs: {'a.b': {}}}", "PV names are letters"],
    ["arguments: {outputs: {A: {latch_dir: up}}}", "latch_dir: expected one of"],
    ["arguments: {outputs: {A: {alarm_on: HUGE}}}", "alarm_on: expected one of major, minor, none"],
    ["arguments: {outputs: {A: {type: int, value: abc}}}", "A.value: expected a number"],
    ["rules: {a: 1}", "rules: expected a list"],
    ["rules: [{condition: 'x ** 2'}]", "rules[0].condition: Rule 0 condition: the power operator"],
    [
      "rules: [{id: R, condition: '1', outputs: {NOPE: 1}}]",
      "rules[0].outputs.NOPE: no declared PV named NOPE",
    ],
    [
      "arguments: {outputs: {A: {}}}\nrules: [{id: R, actuators: {A: 1}}]",
      "rules[0].actuators.A: A has no link to write",
    ],
    ["rules: [{id: R, message_pv: M}]", "rules[0].message_pv: no declared PV named M"],
    ["rules: [{id: R, when: x}]", "rules[0].when: unknown field"],
    ["transforms: [{output: A, expression: '1'}]", "transforms[0].output: no declared PV"],
    [
      "arguments: {outputs: {A: {}}}\ntransforms: [{output: A, expression: 'a.b'}]",
      "transforms[0].expression: Transform A: attribute access",
    ],
    [
      "arguments: {outputs: {A: {}}}\nrule_defaults: {A: [1]}",
      "rule_defaults.A: expected a number",
    ],
    [
      "parameters: {mode: sometimes}",
      "parameters.mode: expected one of continuous, triggered, reactive",
    ],
    ["parameters: {interval: -1}", "parameters.interval: must be >= 0.001"],
    ["prefix: 'A B'", "prefix: letters"],
  ];
  for (const [yaml, msg] of cases) {
    test(yaml, () => expect(refuse(yaml)).toContain(msg));
  }
  test("too many PVs are refused", () => {
    const pvs = Array.from({ length: 4097 }, (_, i) => `    P${i}: {}`).join("\n");
    expect(refuse(`arguments:\n  inputs:\n${pvs}`)).toContain("more than 4096 PVs");
  });
  test("huge rule lists are refused", () => {
    const rules = Array.from({ length: 1001 }, (_, i) => `  - {id: R${i}, condition: "True"}`).join(
      "\n",
    );
    expect(refuse(`rules:\n${rules}`)).toContain("at most 1000 rules");
  });
});
