/**
 * The PVs of a declarative task, as iocmng 2.7.9 serves them (docs/plugins.md, "PVs of a declarative task"): the framework's
 * task PVs with RUN only in triggered mode and CYCLE_COUNT only in the others, plus VERSION,
 * CLEAR, RESET, CONN_INP/CONN_OUT with their `_NAMES` when there are wired inputs/outputs, and
 * every declared PV. Wired PVs are read-only to clients (their value mirrors the external PV);
 * unwired inputs are writable operator setpoints.
 */
import type { PvDef } from "../plugins/config-schema.ts";
import type { DeclarativeSpec, PortSpec, TaskMode } from "./spec.ts";

const STRING_MAX = 39;

/** Whether a framework task PV exists in this mode (2.7.9: RUN triggered only, CYCLE_COUNT not). */
export function keepTaskPv(name: string, mode: TaskMode): boolean {
  if (name === "RUN") return mode === "triggered";
  if (name === "CYCLE_COUNT") return mode !== "triggered";
  return true;
}

const pulse = (name: string, description: string): PvDef => ({
  name,
  direction: "input",
  autosave: false,
  spec: { kind: "enum", writable: true, initial: 0, meta: { states: ["0", "1"], description } },
});

function connPvs(prefix: "CONN_INP" | "CONN_OUT", ports: PortSpec[]): PvDef[] {
  if (ports.length === 0) return [];
  return [
    {
      name: prefix,
      direction: "output",
      autosave: false,
      spec: {
        kind: "long",
        count: ports.length,
        writable: false,
        initial: new Int32Array(ports.length),
        meta: {
          description: `1 = link connected, per ${prefix === "CONN_INP" ? "input" : "output"}`,
        },
      },
    },
    {
      name: `${prefix}_NAMES`,
      direction: "output",
      autosave: false,
      spec: {
        kind: "string",
        writable: false,
        initial: ports
          .map((p) => p.name)
          .join("\n")
          .slice(0, STRING_MAX),
        meta: { description: `Labels of ${prefix}` },
      },
    },
  ];
}

/** VERSION, CLEAR, RESET and the CONN_* PVs of a declarative task. */
export function declarativeExtraPvDefs(spec: DeclarativeSpec): PvDef[] {
  const wired = spec.ports.filter((p) => p.link !== undefined);
  return [
    {
      name: "VERSION",
      direction: "output",
      autosave: false,
      spec: {
        kind: "string",
        writable: false,
        initial: spec.version.slice(0, STRING_MAX),
        meta: { description: "Version" },
      },
    },
    pulse("CLEAR", "Write 1 to release latched outputs"),
    pulse("RESET", "Write 1: clear, reset counter, recheck links"),
    ...connPvs(
      "CONN_INP",
      wired.filter((p) => p.direction === "input"),
    ),
    ...connPvs(
      "CONN_OUT",
      wired.filter((p) => p.direction === "output"),
    ),
  ];
}

/** One declared PV in the server's PV model. */
export function portPvDef(p: PortSpec): PvDef {
  const writable = p.direction === "input" && p.link === undefined;
  const base = {
    name: p.name,
    direction: writable ? ("input" as const) : ("output" as const),
    autosave: writable,
  };
  const sev = p.alarmOn as 0 | 1 | 2;
  switch (p.type) {
    case "float":
      return {
        ...base,
        spec: {
          kind: "double",
          writable,
          initial: Number(p.initial),
          meta: {
            units: p.unit,
            precision: p.prec,
            displayLow: p.low,
            displayHigh: p.high,
            ...(sev ? { alarm: { high: p.high, hsv: sev } } : {}),
          },
        },
      };
    case "int":
      return {
        ...base,
        spec: {
          kind: "long",
          writable,
          initial: Number(p.initial),
          meta: sev ? { alarm: { high: Math.trunc(p.high), hsv: sev } } : {},
        },
      };
    case "bool":
      return {
        ...base,
        spec: {
          kind: "enum",
          writable,
          initial: Number(p.initial) ? 1 : 0,
          meta: { states: [p.znam, p.onam], ...(sev ? { stateSeverity: [0, sev] } : {}) },
        },
      };
    case "string":
      return { ...base, spec: { kind: "string", writable, initial: String(p.initial) } };
  }
}

/** The declared PVs of a declarative spec, in declaration order. */
export function portPvDefs(spec: DeclarativeSpec): PvDef[] {
  return spec.ports.map(portPvDef);
}
