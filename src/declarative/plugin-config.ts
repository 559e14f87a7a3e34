/**
 * Where 2.7.9 config files meet the loader: a config.yaml using any declarative key (`arguments`,
 * `rules`, `transforms`, `rule_defaults`, `prefix`, links, `mode: reactive`) is read by the
 * declarative parser instead of our own schema, and its PVs are 2.7.9's (pvdefs.ts). The loader
 * (src/plugins/config.ts and the pipeline) calls these few functions and nothing else.
 */
import { VERSION } from "../version.ts";
import { declarativeExtraPvDefs, keepTaskPv, portPvDefs } from "./pvdefs.ts";
import { type DeclarativeSpec, parseDeclarative } from "./spec.ts";
import { DeclarativeConfigError } from "./spec-fields.ts";

export { isDeclarative } from "./spec.ts";

/** The declarative part of a parsed config: the raw document and its spec (config.yaml parameters). */
export interface DeclarativeConfig {
  raw: Record<string, unknown>;
  spec: DeclarativeSpec;
}

/** A declarative config error in the loader's terms: field path and message. */
export interface DeclarativeProblem {
  path: string;
  message: string;
}

/**
 * Parses the declarative config with `parameters` (config.yaml's, or merged with overrides);
 * returns the spec or the problem (never throws for bad input).
 */
export function declarativeSpec(
  raw: Record<string, unknown>,
  parameters: Record<string, unknown>,
): { ok: true; spec: DeclarativeSpec } | { ok: false; problem: DeclarativeProblem } {
  try {
    return { ok: true, spec: parseDeclarative(raw, parameters, VERSION) };
  } catch (e) {
    if (e instanceof DeclarativeConfigError) {
      return { ok: false, problem: { path: e.path, message: e.message } };
    }
    throw e;
  }
}

/** The worker's loop mode for a spec: reactive tasks run a continuous heartbeat. */
export function loopMode(spec: DeclarativeSpec): "continuous" | "triggered" {
  return spec.mode === "triggered" ? "triggered" : "continuous";
}

/** Every PV of a declarative task: the framework's (per mode), 2.7.9's extra ones, the declared. */
export function declarativePvDefs<D extends { name: string }>(
  spec: DeclarativeSpec,
  defaults: D[],
) {
  return [
    ...defaults.filter((d) => keepTaskPv(d.name, spec.mode)),
    ...declarativeExtraPvDefs(spec),
    ...portPvDefs(spec),
  ];
}
