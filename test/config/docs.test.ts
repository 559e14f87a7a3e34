import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { parseServerConfigFile } from "../../src/config.ts";
import { parsePluginConfig } from "../../src/plugins/config.ts";

// The examples in docs/configuration.md must stay valid: a reader copies them.
const doc = readFileSync(join(import.meta.dir, "..", "..", "docs", "configuration.md"), "utf8");
const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");

test("the config.yaml example in the docs is valid", () => {
  const example = blocks.find((b) => b.startsWith("parameters:"));
  expect(example).toBeDefined();
  const cfg = parsePluginConfig(example!, "docs example", "task");
  expect(cfg.pvs.map((p) => p.name)).toEqual([
    "SETPOINT",
    "MODE",
    "READING",
    "ALARM",
    "SPECTRUM",
    "LOG_LINE",
  ]);
});

test("the IOCMNG_CONFIG example in the docs is valid", () => {
  const example = blocks.find(
    (b) => b.includes("plugins:") && b.includes("prefix:") && !b.includes("apiVersion"),
  );
  expect(example).toBeDefined();
  const s = parseServerConfigFile(example!, "docs example");
  expect(s.plugins.map((p) => `${p.kind}:${p.name}`)).toEqual([
    "task:temp-monitor",
    "task:beam-watch",
    "job:nightly-diag",
  ]);
});

test("the ConfigMap in the docs embeds a valid IOCMNG_CONFIG", () => {
  const k8s = blocks.find((b) => b.includes("kind: ConfigMap"));
  expect(k8s).toBeDefined();
  const cm = parseAllDocuments(k8s!)
    .map((d) => d.toJS())
    .find((d) => d?.kind === "ConfigMap");
  const s = parseServerConfigFile(cm.data["iocmng.yaml"], "configmap");
  expect(s.plugins[0]?.pat_env).toBe("GITLAB_TOKEN");
});
