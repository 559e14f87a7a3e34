import { describe, expect, test } from "bun:test";
import { parsePluginConfig } from "../../src/plugins/config.ts";
import { PluginConfigError } from "../../src/plugins/config-schema.ts";

describe("config.yaml: access security of a plugin's PVs", () => {
  test("access.asg for the plugin, asg per PV, finite", () => {
    const cfg = parsePluginConfig(
      `access:
  asg: CTRL
pvs:
  inputs:
    SP: { type: float, asg: EXPERT, finite: true }
    GAIN: { type: float }
`,
      "config.yaml",
      "task",
    );
    expect(cfg.asg).toBe("CTRL");
    expect(cfg.pvs.map((p) => [p.name, p.spec.asg, p.spec.meta?.finiteOnly])).toEqual([
      ["SP", "EXPERT", true],
      ["GAIN", undefined, undefined],
    ]);
    expect(parsePluginConfig("pvs: {}\n", "config.yaml", "task").asg).toBeUndefined();
  });

  test("bad groups and unknown access keys are refused with their path", () => {
    const bad: [string, string][] = [
      ["access:\n  asg: 'a b'\n", "access.asg"],
      ["access:\n  group: CTRL\n", "access.group"],
      ["pvs:\n  inputs:\n    SP: { type: float, asg: '' }\n", "pvs.inputs.SP.asg"],
      ["pvs:\n  inputs:\n    SP: { type: float, finite: 1 }\n", "pvs.inputs.SP.finite"],
    ];
    for (const [text, path] of bad) {
      let err: unknown;
      try {
        parsePluginConfig(text, "config.yaml", "task");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PluginConfigError);
      expect((err as PluginConfigError).path).toBe(path);
    }
  });
});
