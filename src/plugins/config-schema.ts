/**
 * The schema of a plugin's config.yaml: the single source of truth. It validates files (errors
 * name the file, the dotted field path and what was expected, see config-schema-errors.ts) and
 * generates `schema/plugin-config.schema.json` for editors (`bun scripts/gen-schema.ts`).
 * `x-expected` is the phrase used in error messages (stripped from the generated JSON Schema);
 * `description` is what editors show.
 */
import { type Static, Type } from "@sinclair/typebox";
import type { DeclarativeConfig } from "../declarative/plugin-config.ts";
import { MAX_ENUM_STATES, MAX_ENUM_STRING_BYTES, MAX_UNITS_BYTES } from "../pv/pv.ts";
import type { PvSpec, Severity } from "../pv/types.ts";
import { MIN_MEMORY_MIB, type SandboxLimits } from "./host/sandbox.ts";

/** A PV declared by a plugin (short name, without the plugin prefix). */
export interface PvDef {
  name: string;
  direction: "input" | "output";
  spec: Omit<PvSpec, "name">;
  /** Persist the value across restarts (default: inputs yes, outputs no). */
  autosave: boolean;
}

/** An access security group name as config.yaml may give it. */
const ASG_PATTERN = "^[\\x21-\\x7e]{1,128}$";

/** A parsed, validated config.yaml. */
export interface PluginConfig {
  parameters: Record<string, unknown>;
  pvs: PvDef[];
  /** `limits:` overrides of the sandbox defaults (capped by the operator's max_limits). */
  limits?: Partial<SandboxLimits>;
  /** `restart:` policy after the plugin's process ends unexpectedly (default on-failure). */
  restart?: RestartPolicy;
  /** The file it came from; null when the plugin has none. */
  file: string | null;
  /** `access.asg`: the access security group of all its PVs (a PV's own `asg` wins). */
  asg?: string;
  /** A 2.7.9 declarative config (links, rules, transforms): src/declarative/plugin-config.ts. */
  declarative?: DeclarativeConfig;
  /** config.yaml `prefix`: the plugin's PV segment instead of its upper-cased name. */
  prefix?: string;
}

/** What happens when a plugin's process ends unexpectedly. */
export type RestartPolicy = "on-failure" | "always" | "never";

/** Invalid config.yaml: names the file, the dotted field path and what was expected. */
export class PluginConfigError extends Error {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly expected: string,
    detail?: string,
  ) {
    super(
      `${file}: ${path === "" ? "" : `${path}: `}${detail ?? `expected ${expected}`}`.replace(
        /: $/,
        "",
      ),
    );
    this.name = "PluginConfigError";
  }
}

/** Largest config.yaml accepted. */
export const MAX_PLUGIN_CONFIG_BYTES = 256 * 1024;
/** Most PVs one config.yaml may declare. */
export const MAX_DECLARED_PVS = 4096;
/** Largest array PV (elements) a config.yaml may declare. */
export const MAX_ARRAY_COUNT = 1 << 22;
/** Longest DESC (the record field holds 40 characters plus NUL). */
export const MAX_DESC_CHARS = 40;
/** Longest PV short name a plugin may declare. */
export const MAX_PV_SHORT_NAME = 60;
/** PV short names: EPICS record-name characters (no '.', the field separator), not starting with a symbol. */
export const PV_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_\-+:[\]<>;]{0,59}$/;
/** Shortest `interval` accepted (seconds). */
export const MIN_INTERVAL = 0.001;
/** Longest `interval` accepted (seconds): one week. */
export const MAX_INTERVAL = 7 * 24 * 3600;

// -----------------------------------------------------------------------------------------------
// Schema. `x-expected` is the phrase used in error messages (stripped from the generated JSON
// Schema); `description` is what editors show.

const SEVERITIES = ["NO_ALARM", "MINOR", "MAJOR", "INVALID"] as const;
export const SEVERITY_CODE: Record<(typeof SEVERITIES)[number], Severity> = {
  NO_ALARM: 0,
  MINOR: 1,
  MAJOR: 2,
  INVALID: 3,
};

const PV_TYPES = [
  "float",
  "int",
  "string",
  "bool",
  "enum",
  "char",
  "float[]",
  "int[]",
  "char[]",
] as const;
export type PvTypeName = (typeof PV_TYPES)[number];

const SeveritySchema = Type.Union(
  SEVERITIES.map((s) => Type.Literal(s)),
  {
    "x-expected": `one of ${SEVERITIES.join(", ")}`,
    description: "Alarm severity",
  },
);

const num = (description: string) =>
  Type.Optional(Type.Number({ description, "x-expected": "a number" }));

export const AlarmSchema = Type.Object(
  {
    hihi: num("HIHI alarm limit: at or above it the PV is in HIHI alarm (severity hhsv)"),
    high: num("HIGH alarm limit (severity hsv)"),
    low: num("LOW alarm limit (severity lsv)"),
    lolo: num("LOLO alarm limit: at or below it the PV is in LOLO alarm (severity llsv)"),
    hhsv: Type.Optional(SeveritySchema),
    hsv: Type.Optional(SeveritySchema),
    lsv: Type.Optional(SeveritySchema),
    llsv: Type.Optional(SeveritySchema),
    hyst: Type.Optional(
      Type.Number({
        minimum: 0,
        description: "Alarm hysteresis (HYST): an alarm clears only this far back inside the limit",
        "x-expected": "a number >= 0",
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      "Alarm limits and severities, like the ai/ao record fields (default severities: hihi/lolo MAJOR, high/low MINOR)",
    "x-expected": "a mapping of alarm limits (hihi, high, low, lolo, hhsv, hsv, lsv, llsv, hyst)",
  },
);

const StateSchema = Type.Union(
  [
    Type.String({ maxLength: MAX_ENUM_STRING_BYTES }),
    Type.Object(
      {
        name: Type.String({
          maxLength: MAX_ENUM_STRING_BYTES,
          "x-expected": `a state name of at most ${MAX_ENUM_STRING_BYTES} characters`,
        }),
        severity: Type.Optional(SeveritySchema),
      },
      { additionalProperties: false },
    ),
  ],
  {
    "x-expected": `a state name (at most ${MAX_ENUM_STRING_BYTES} characters) or {name, severity}`,
  },
);

export const PvSchema = Type.Object(
  {
    type: Type.Union(
      PV_TYPES.map((t) => Type.Literal(t)),
      {
        description:
          "Value type: float (DBR_DOUBLE), int (DBR_LONG), string (40-char DBR_STRING), bool (2-state enum), enum (up to 16 states), char; a [] suffix makes an array (waveform) of `count` elements",
        "x-expected": `one of ${PV_TYPES.join(", ")}`,
      },
    ),
    value: Type.Optional(
      Type.Unknown({
        description:
          "Initial value: a number, a string, true/false (bool), a state name or index (bool/enum), a list (arrays) or a string (char[])",
      }),
    ),
    count: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_ARRAY_COUNT,
        description: "Maximum number of elements (NELM); > 1 makes float/int/char an array",
        "x-expected": `an integer 1..${MAX_ARRAY_COUNT}`,
      }),
    ),
    unit: Type.Optional(
      Type.String({
        maxLength: MAX_UNITS_BYTES,
        description: "Engineering units (EGU), at most 7 characters",
        "x-expected": `a string of at most ${MAX_UNITS_BYTES} characters`,
      }),
    ),
    prec: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 17,
        description: "Digits after the decimal point (PREC), float only",
        "x-expected": "an integer 0..17",
      }),
    ),
    low: num("Display low limit (LOPR), as in the original iocmng"),
    high: num("Display high limit (HOPR), as in the original iocmng"),
    drvl: num("Drive low limit (DRVL): a client write below it is refused"),
    drvh: num("Drive high limit (DRVH): a client write above it is refused"),
    desc: Type.Optional(
      Type.String({
        maxLength: MAX_DESC_CHARS,
        description: "Description (DESC), at most 40 characters",
        "x-expected": `a string of at most ${MAX_DESC_CHARS} characters`,
      }),
    ),
    alarm: Type.Optional(AlarmSchema),
    mdel: num(
      "Monitor deadband (MDEL): DBE_VALUE posts only when the change exceeds it; -1 = every update",
    ),
    adel: num(
      "Archive deadband (ADEL): DBE_LOG posts only when the change exceeds it; -1 = every update",
    ),
    znam: Type.Optional(
      Type.String({
        maxLength: MAX_ENUM_STRING_BYTES,
        description: "Name of state 0 (bool only; default '0')",
        "x-expected": `a string of at most ${MAX_ENUM_STRING_BYTES} characters`,
      }),
    ),
    onam: Type.Optional(
      Type.String({
        maxLength: MAX_ENUM_STRING_BYTES,
        description: "Name of state 1 (bool only; default '1')",
        "x-expected": `a string of at most ${MAX_ENUM_STRING_BYTES} characters`,
      }),
    ),
    zsv: Type.Optional(SeveritySchema),
    osv: Type.Optional(SeveritySchema),
    states: Type.Optional(
      Type.Array(StateSchema, {
        minItems: 1,
        maxItems: MAX_ENUM_STATES,
        description: "Enum states (enum only), at most 16: a name or {name, severity}",
        "x-expected": `a list of 1..${MAX_ENUM_STATES} states`,
      }),
    ),
    autosave: Type.Optional(
      Type.Boolean({
        description:
          "Save the value and restore it at the next start (default: true for inputs, false for outputs)",
        "x-expected": "true or false",
      }),
    ),
    asg: Type.Optional(
      Type.String({
        pattern: ASG_PATTERN,
        description:
          "Access security group (ASG of the access security file); the operator may cap which ones plugins use",
        "x-expected": "an access security group name (1..128 printable characters)",
      }),
    ),
    finite: Type.Optional(
      Type.Boolean({
        description: "Refuse client writes of NaN and ±Infinity (always so when drvl/drvh are set)",
        "x-expected": "true or false",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "One PV; its full name is <plugin prefix>:<key>",
    "x-expected": "a mapping describing a PV (at least `type`)",
  },
);

const PvMapSchema = Type.Union(
  [
    Type.Null(),
    Type.Record(Type.String({ pattern: PV_NAME_RE.source }), PvSchema, {
      "x-expected": "a mapping of PV name to PV definition",
    }),
  ],
  { "x-expected": "a mapping of PV name to PV definition" },
);

/** The TypeBox schema of a plugin's config.yaml. */
/** `limits:` of a config.yaml: the plugin's own process limits (docs/security.md). */
const limitInt = (min: number, max: number, description: string) =>
  Type.Optional(
    Type.Integer({
      minimum: min,
      maximum: max,
      description,
      "x-expected": `an integer ${min}..${max}`,
    }),
  );
export const LimitsSchema = Type.Object(
  {
    memory_mib: limitInt(MIN_MEMORY_MIB, 1 << 20, "Data memory limit in MiB (RLIMIT_DATA)"),
    open_files: limitInt(64, 1 << 20, "Open files and sockets (RLIMIT_NOFILE)"),
    processes: limitInt(16, 1 << 22, "Processes and threads (cgroup pids.max or RLIMIT_NPROC)"),
    nice: limitInt(0, 19, "CPU nice value; higher is lower priority"),
    cpu_seconds: limitInt(0, 1 << 30, "CPU time in seconds (RLIMIT_CPU), 0 = unlimited"),
  },
  {
    additionalProperties: false,
    description:
      "Limits of the plugin's process, each capped by the server's sandbox.max_limits (docs/security.md)",
    "x-expected": "a mapping of memory_mib, open_files, processes, nice, cpu_seconds",
  },
);

export const PluginConfigSchema = Type.Object(
  {
    parameters: Type.Optional(
      Type.Union(
        [
          Type.Null(),
          Type.Object(
            {
              mode: Type.Optional(
                Type.Union([Type.Literal("continuous"), Type.Literal("triggered")], {
                  description:
                    "Task mode: continuous (execute() every `interval` s) or triggered (execute() on a write of 1 to RUN)",
                  "x-expected": "'continuous' or 'triggered'",
                }),
              ),
              interval: Type.Optional(
                Type.Number({
                  minimum: MIN_INTERVAL,
                  maximum: MAX_INTERVAL,
                  description: "Seconds between execute() calls in continuous mode (default 1.0)",
                  "x-expected": `a number of seconds ${MIN_INTERVAL}..${MAX_INTERVAL}`,
                }),
              ),
            },
            {
              additionalProperties: true,
              description:
                "Parameters given to the plugin as `this.parameters`; REST/IOCMNG_CONFIG parameters override them",
              "x-expected": "a mapping of parameter names to values",
            },
          ),
        ],
        { "x-expected": "a mapping of parameter names to values" },
      ),
    ),
    limits: Type.Optional(LimitsSchema),
    restart: Type.Optional(
      Type.Union([Type.Literal("on-failure"), Type.Literal("always"), Type.Literal("never")], {
        description:
          "Restart of the plugin's process after it ended unexpectedly, with exponential backoff: on-failure (default: after a crash or a non-zero exit), always, never",
        "x-expected": "'on-failure', 'always' or 'never'",
      }),
    ),
    access: Type.Optional(
      Type.Object(
        {
          asg: Type.Optional(
            Type.String({
              pattern: ASG_PATTERN,
              description:
                "Access security group of all the plugin's PVs (a PV's own `asg` wins); DEFAULT when unset",
              "x-expected": "an access security group name (1..128 printable characters)",
            }),
          ),
        },
        {
          additionalProperties: false,
          description: "Access security of the plugin's PVs",
          "x-expected": "a mapping with `asg`",
        },
      ),
    ),
    pvs: Type.Optional(
      Type.Union(
        [
          Type.Null(),
          Type.Object(
            {
              inputs: Type.Optional(PvMapSchema),
              outputs: Type.Optional(PvMapSchema),
            },
            {
              additionalProperties: false,
              description:
                "inputs: writable by CA clients (operator → plugin); outputs: read-only to clients (plugin → operator)",
              "x-expected": "a mapping with `inputs` and/or `outputs`",
            },
          ),
        ],
        { "x-expected": "a mapping with `inputs` and/or `outputs`" },
      ),
    ),
  },
  {
    additionalProperties: false,
    title: "iocmng plugin config.yaml",
    description: "Parameters and PVs of an iocmng task or job plugin",
    "x-expected": "a mapping with `parameters` and/or `pvs`",
  },
);

export type PvYaml = Static<typeof PvSchema>;
/** A config.yaml document that passed the schema. */
export type PluginConfigYaml = Static<typeof PluginConfigSchema>;

/** The JSON Schema document written to schema/plugin-config.schema.json. */
export function pluginConfigJsonSchema(): Record<string, unknown> {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v === null || typeof v !== "object") return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (k !== "x-expected") out[k] = strip(x);
    return out;
  };
  return {
    $schema: "http://json-schema.org/draft-07/schema#",
    ...(strip(JSON.parse(JSON.stringify(PluginConfigSchema))) as Record<string, unknown>),
  };
}

/** The schema-checked `limits:` mapping as SandboxLimits fields. */
export function limitsFromYaml(l: Static<typeof LimitsSchema>): Partial<SandboxLimits> {
  return {
    ...(l.memory_mib !== undefined ? { memoryMiB: l.memory_mib } : {}),
    ...(l.open_files !== undefined ? { openFiles: l.open_files } : {}),
    ...(l.processes !== undefined ? { processes: l.processes } : {}),
    ...(l.nice !== undefined ? { nice: l.nice } : {}),
    ...(l.cpu_seconds !== undefined ? { cpuSeconds: l.cpu_seconds } : {}),
  };
}
