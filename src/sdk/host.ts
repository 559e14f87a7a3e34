/**
 * The bridge between SDK objects (TaskBase/JobBase) and whatever runs them: the plugin worker of the
 * server, or an in-memory host for plugin authors' unit tests. Kept apart from index.ts so the
 * runtime can reach it without widening the public `iocmng` module.
 */
import type { DeclarativeSpec } from "../declarative/spec.ts";

/** Values a plugin may write to a PV: numbers, strings, booleans, arrays, typed arrays. */
export type PvInput =
  | number
  | string
  | boolean
  | readonly number[]
  | Float64Array
  | Int32Array
  | Uint8Array;

/** Value kinds of a PV (same names as the server's PV model). */
export type PvKindName = "double" | "long" | "string" | "enum" | "char";

/** Definition of a PV created at runtime with `addPv`; mirrors the server's PV spec. */
export interface PvDefinition {
  kind: PvKindName;
  /** Maximum element count; > 1 makes double/long/char an array. */
  count?: number;
  /** Writable by CA clients (an input); writes reach `onPvWrite`. Default false. */
  writable?: boolean;
  initial?: PvInput;
  /** Autosave the value across restarts (default: same as `writable`). */
  autosave?: boolean;
  meta?: {
    units?: string;
    precision?: number;
    description?: string;
    displayLow?: number;
    displayHigh?: number;
    controlLow?: number;
    controlHigh?: number;
    alarm?: {
      hihi?: number;
      high?: number;
      low?: number;
      lolo?: number;
      hhsv?: number;
      hsv?: number;
      lsv?: number;
      llsv?: number;
      hyst?: number;
    };
    states?: string[];
    stateSeverity?: number[];
    mdel?: number;
    adel?: number;
  };
}

/** Explicit alarm for `setPv` (EPICS severity 0..3, status per alarm.h). */
export interface PvAlarm {
  severity: number;
  status?: number;
}

/** Log levels of the plugin logger (pino's). */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

/** What a running plugin needs from its environment. */
export interface SdkHost {
  setPv(name: string, value: PvInput, alarm?: PvAlarm): void;
  getPv(name: string): unknown;
  hasPv(name: string): boolean;
  addPv(name: string, def: PvDefinition): Promise<void>;
  log(level: LogLevel, bindings: Record<string, unknown>, args: unknown[]): void;
}

/** Identity of the plugin being constructed; read by the PluginBase constructor. */
export interface PluginContext {
  name: string;
  kind: "task" | "job";
  prefix: string;
  parameters: Record<string, unknown>;
  mode: "continuous" | "triggered";
  interval: number;
  host: SdkHost;
  /** The declarative part of config.yaml (links, rules, transforms), for DeclarativeTask. */
  declarative?: DeclarativeSpec;
}

let pending: PluginContext | null = null;

/** Constructs `cls` with `ctx` visible to its base constructor (field initialisers see it too). */
export function constructWithContext<T>(cls: new () => T, ctx: PluginContext): T {
  pending = ctx;
  try {
    return new cls();
  } finally {
    pending = null;
  }
}

/** The context of the construction in progress, if any (read by the base constructors). */
export function currentContext(): PluginContext | null {
  return pending;
}

/** An in-memory host: PVs are plain values, logs go to the console. For tests and local runs. */
export class LocalHost implements SdkHost {
  readonly values = new Map<string, unknown>();
  readonly defs = new Map<string, PvDefinition>();

  constructor(initial: Record<string, unknown> = {}) {
    for (const [k, v] of Object.entries(initial)) this.values.set(k, v);
  }
  setPv(name: string, value: PvInput): void {
    if (!this.values.has(name)) throw new Error(`unknown PV "${name}"`);
    this.values.set(name, value);
  }
  getPv(name: string): unknown {
    if (!this.values.has(name)) throw new Error(`unknown PV "${name}"`);
    return this.values.get(name);
  }
  hasPv(name: string): boolean {
    return this.values.has(name);
  }
  async addPv(name: string, def: PvDefinition): Promise<void> {
    if (this.values.has(name)) throw new Error(`PV "${name}" already exists`);
    this.defs.set(name, def);
    this.values.set(name, def.initial ?? (def.kind === "string" ? "" : 0));
  }
  log(level: LogLevel, bindings: Record<string, unknown>, args: unknown[]): void {
    const fn = level === "error" || level === "fatal" ? console.error : console.log;
    fn(`[${level}]`, ...(Object.keys(bindings).length ? [bindings] : []), ...args);
  }
}

/** A reading from the CA client (subset of ffi's CaReading that plugins rely on). */
export interface PluginCaReading {
  value: number | string | ArrayLike<number>;
  status?: number;
  severity?: number;
  timestamp?: Date;
  /** Exact EPICS timestamp, POSIX seconds and nanoseconds (`as: "time"`). */
  stamp?: { sec: number; nsec: number };
  units?: string;
  precision?: number;
  enumStrings?: string[];
  displayLimits?: { low: number; high: number };
  controlLimits?: { low: number; high: number };
  alarmLimits?: { lolo: number; low: number; high: number; hihi: number };
  count: number;
  nativeType: string;
}

/** The Channel Access client plugins get as `this.ca` (libca through bun:ffi, in their Worker). */
export interface PluginCaClient {
  /** Reads a PV; `timeout` in seconds (default 5). */
  get(
    name: string,
    opts?: { as?: "value" | "time" | "ctrl"; timeout?: number; count?: number },
  ): Promise<PluginCaReading>;
  /** Writes a PV; `wait: true` waits for completion like `caput -c`. */
  put(name: string, value: unknown, opts?: { wait?: boolean; timeout?: number }): Promise<void>;
  /** Subscribes; iterate with `for await`, or pass onUpdate; close() ends it. */
  monitor(
    name: string,
    opts?: {
      mask?: number;
      as?: "value" | "time" | "ctrl";
      onUpdate?: (r: PluginCaReading) => void;
      queueLimit?: number;
    },
  ): AsyncIterable<PluginCaReading> & { close(): void };
  /** Connection changes of a PV; returns the function that stops listening. */
  onConnection(name: string, cb: (connected: boolean) => void): () => void;
}

/** Optional services (CA client, device layer) a runtime may provide to plugins. */
export interface Services {
  ca?: () => PluginCaClient;
  devices?: () => DeviceAccess;
}

/** The subset of the device registry plugins see. */
export interface DeviceAccess {
  getDevice(name: string): unknown;
  listDevices(): string[];
  getDevicesByType(devgroup: string): unknown[];
}

let services: Services = {};

/** Installs the service providers (called by the plugin worker at start). */
export function setServices(s: Services): void {
  services = s;
}

/** The installed service providers. */
export function getServices(): Services {
  return services;
}
