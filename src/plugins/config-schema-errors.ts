/**
 * Schema violations of a plugin's config.yaml as readable errors: the dotted field path, what was
 * expected (the schema's `x-expected` phrase) and, for an unknown key, the likeliest intended one.
 * The schema itself is config-schema.ts.
 */
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { Value, type ValueError } from "@sinclair/typebox/value";
import { show, suggest } from "../common/text.ts";
import {
  AlarmSchema,
  LimitsSchema,
  PluginConfigError,
  PluginConfigSchema,
  PvSchema,
} from "./config-schema.ts";

const PV_KEYS = Object.keys(PvSchema.properties);
const ALARM_KEYS = Object.keys(AlarmSchema.properties);
const TOP_KEYS = ["parameters", "pvs", "limits", "restart"];
const PVS_KEYS = ["inputs", "outputs"];

function dotted(path: string): string {
  // TypeBox paths are JSON pointers ("/pvs/inputs/SET/prec"); show them as "pvs.inputs.SET.prec".
  return path
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : p))
    .join(".")
    .replace(/\.\[/g, "[");
}

// Keys allowed in the mapping at `parent` (the path without the unknown key itself).
function keysFor(parent: string[]): string[] {
  if (parent.length === 0) return TOP_KEYS;
  if (parent.length === 1 && parent[0] === "limits") return Object.keys(LimitsSchema.properties);
  if (parent.length === 1 && parent[0] === "pvs") return PVS_KEYS;
  if (parent.length === 3 && parent[0] === "pvs") return PV_KEYS;
  if (parent.length === 4 && parent[3] === "alarm") return ALARM_KEYS;
  if (parent.length === 5 && parent[3] === "states") return ["name", "severity"];
  return [];
}

// Picks the most useful error of a list: an unknown key (the likeliest typo) first.
function pickError(errors: ValueError[]): ValueError | undefined {
  return errors.find((e) => e.message === "Unexpected property") ?? errors[0];
}

// TypeBox reports a failed union as one vague error; descend into the variant that matched the
// value's shape (its errors lie deeper than the union itself) to report the real problem.
function refineError(e: ValueError, depth = 0): ValueError {
  if (e.errors.length === 0 || depth > 8) return e;
  const depthOf = (p: string): number => p.split("/").length;
  for (const it of e.errors) {
    const list = [...it];
    const deeper = list.filter((x) => depthOf(x.path) > depthOf(e.path));
    const best = pickError(deeper);
    if (best !== undefined) return refineError(best, depth + 1);
  }
  return e;
}

// Compiled once: the fast path for valid files. Errors are only enumerated when Check fails.
let compiled: TypeCheck<typeof PluginConfigSchema> | null = null;

/** The first schema violation of `data` as a PluginConfigError, or null when it is valid. */
export function schemaError(file: string, data: unknown): PluginConfigError | null {
  compiled ??= TypeCompiler.Compile(PluginConfigSchema);
  if (compiled.Check(data)) return null;
  const picked = pickError([...Value.Errors(PluginConfigSchema, data)]);
  if (picked === undefined) return null;
  const chosen = refineError(picked);
  const path = dotted(chosen.path);
  if (chosen.message === "Unexpected property") {
    const segs = chosen.path.split("/").slice(1);
    const key = segs[segs.length - 1] ?? "";
    const known = keysFor(segs.slice(0, -1));
    const hint = suggest(key, known);
    if (segs.length === 4 && segs[0] === "pvs" && (key === "hihi" || key === "lolo")) {
      return new PluginConfigError(
        file,
        path,
        "alarm limits inside an `alarm:` mapping",
        `unknown key; alarm limits go in a nested mapping, e.g. 'alarm: {${key}: …}' (low/high are display limits)`,
      );
    }
    return new PluginConfigError(
      file,
      path,
      `one of ${known.join(", ")}`,
      `unknown key${hint ? ` (did you mean '${hint}'?)` : ""}; expected one of ${known.join(", ")}`,
    );
  }
  const schema = chosen.schema as { "x-expected"?: string };
  const expected = schema["x-expected"] ?? chosen.message.replace(/^Expected /, "");
  if (chosen.message.startsWith("Expected required property")) {
    return new PluginConfigError(file, path, expected, `missing; expected ${expected}`);
  }
  return new PluginConfigError(
    file,
    path,
    expected,
    `expected ${expected}, got ${show(chosen.value)}`,
  );
}
