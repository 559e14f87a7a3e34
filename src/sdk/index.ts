/**
 * The `iocmng` module that plugins import: `import { TaskBase, JobBase, JobResult } from "iocmng"`.
 * Inside the server each plugin runs in its own Worker, where this module is registered as a
 * virtual module so that the runtime's class identity checks see the very classes plugins extend.
 * Outside the server (plugin unit tests) the classes work against an in-memory host.
 */
import { JOB_STATES, TASK_STATES } from "../common/names.ts";
import { truncateUtf8 } from "../pv/pv.ts";
import {
  currentContext,
  type DeviceAccess,
  getServices,
  LocalHost,
  type LogLevel,
  type PluginCaClient,
  type PvAlarm,
  type PvDefinition,
  type PvInput,
  type SdkHost,
} from "./host.ts";

export type {
  LogLevel,
  PluginCaClient,
  PluginCaReading,
  PvAlarm,
  PvDefinition,
  PvInput,
  PvKindName,
} from "./host.ts";

/** Longest MESSAGE in bytes (an EPICS string holds 39 characters plus the NUL). */
export const MAX_MESSAGE_BYTES = 39;

/** Task and job STATUS states, in the order of the STATUS enum PV. */
export { JOB_STATES, TASK_STATES };
/** A task's STATUS. */
export type TaskStatus = (typeof TASK_STATES)[number];
/** A job's STATUS. */
export type JobStatus = (typeof JOB_STATES)[number];

/** A pino-like logger; lines reach the server's log tagged with the plugin name. */
export interface PluginLogger {
  trace(obj: unknown, msg?: string, ...args: unknown[]): void;
  debug(obj: unknown, msg?: string, ...args: unknown[]): void;
  info(obj: unknown, msg?: string, ...args: unknown[]): void;
  warn(obj: unknown, msg?: string, ...args: unknown[]): void;
  error(obj: unknown, msg?: string, ...args: unknown[]): void;
  fatal(obj: unknown, msg?: string, ...args: unknown[]): void;
  child(bindings: Record<string, unknown>): PluginLogger;
}

/** Builds a PluginLogger that forwards to `host.log` with the given bindings. */
export function makeLogger(host: SdkHost, bindings: Record<string, unknown> = {}): PluginLogger {
  const at =
    (level: LogLevel) =>
    (...args: unknown[]): void =>
      host.log(level, bindings, args);
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    fatal: at("fatal"),
    child: (more) => makeLogger(host, { ...bindings, ...more }),
  };
}

/** Common base of tasks and jobs: identity, parameters, PV access, logging, services. */
export abstract class PluginBase {
  /** Plugin name as registered (REST `name`). */
  readonly name: string;
  /** PV prefix, e.g. "BL:NS:MYTASK"; PV short names are appended with ":". */
  readonly prefix: string;
  /** Parameters from config.yaml, overridden by the REST request. */
  readonly parameters: Record<string, unknown>;
  /** Logger whose lines reach the server's log tagged with this plugin. */
  readonly logger: PluginLogger;
  /** @internal the environment this instance talks to. */
  protected readonly host: SdkHost;

  constructor() {
    const ctx = currentContext();
    this.host = ctx?.host ?? new LocalHost();
    this.name = ctx?.name ?? new.target.name;
    this.prefix = ctx?.prefix ?? this.name.toUpperCase();
    this.parameters = ctx?.parameters ?? {};
    this.logger = makeLogger(this.host);
  }

  /** Sets a PV by short name (e.g. "READING"); updates are batched and sent to clients. */
  setPv(name: string, value: PvInput, alarm?: PvAlarm): void {
    this.host.setPv(name, value, alarm);
  }

  /** Current value of a PV by short name (latest client write or own setPv). */
  getPv(name: string): unknown {
    return this.host.getPv(name);
  }

  /** Whether a PV with that short name exists. */
  hasPv(name: string): boolean {
    return this.host.hasPv(name);
  }

  /** Creates a PV at runtime (e.g. one per discovered device); resolves once it is served. */
  addPv(name: string, def: PvDefinition): Promise<void> {
    return this.host.addPv(name, def);
  }

  /** Sets MESSAGE (truncated to 39 bytes, the EPICS string size). */
  setMessage(message: string): void {
    this.host.setPv("MESSAGE", truncateUtf8(String(message), MAX_MESSAGE_BYTES));
  }

  /** The Channel Access client (libca); throws a clear error when it is not available. */
  get ca(): PluginCaClient {
    const provider = getServices().ca;
    if (!provider) throw new Error("the Channel Access client is not available in this runtime");
    return provider();
  }

  /** A device of the beamline's device layer by name (undefined when unknown). */
  getDevice(name: string): unknown {
    return devices().getDevice(name);
  }

  /** Names of all devices of the device layer. */
  listDevices(): string[] {
    return devices().listDevices();
  }

  /** Devices of one group (e.g. "mot", "diag"). */
  getDevicesByType(devgroup: string): unknown[] {
    return devices().getDevicesByType(devgroup);
  }
}

function devices(): DeviceAccess {
  const provider = getServices().devices;
  if (!provider) {
    throw new Error(
      "the device layer is not available: it is off by default; set IOCMNG_DISABLE_DEVICES=false " +
        "(or IOCMNG_DISABLE_OPHYD=false) and IOCMNG_BEAMLINE_CONFIG to a values file",
    );
  }
  return provider();
}

/**
 * A task: `execute()` runs every `interval` seconds (continuous mode) or each time an operator
 * writes 1 to RUN (triggered mode). Client writes to input PVs reach `onPvWrite` first.
 */
export abstract class TaskBase extends PluginBase {
  /** "continuous" or "triggered" (from `parameters.mode`). */
  readonly mode: "continuous" | "triggered";
  /** Seconds between cycles in continuous mode (from `parameters.interval`). */
  readonly interval: number;
  /** @internal maintained by the runtime. */
  _cycleCount = 0;

  constructor() {
    super();
    const ctx = currentContext();
    const m = ctx?.mode ?? this.parameters.mode;
    this.mode = m === "triggered" ? "triggered" : "continuous";
    const i = Number(ctx?.interval ?? this.parameters.interval);
    this.interval = Number.isFinite(i) && i > 0 ? i : 1;
  }

  /** Completed execute() cycles so far (also served as CYCLE_COUNT). */
  get cycleCount(): number {
    return this._cycleCount;
  }

  /** Called once before the first cycle. */
  abstract initialize(): void | Promise<void>;
  /** One cycle of work. A throw sets STATUS ERROR and MESSAGE; the loop goes on. */
  abstract execute(): void | Promise<void>;
  /** Called once when the task is removed or the server stops (bounded in time). */
  abstract cleanup(): void | Promise<void>;
  /**
   * Optional: a CA client wrote `value` to input PV `name`. Throw (or reject) to refuse the write:
   * the client's put fails with your message. Return to accept: the PV takes the value.
   */
  onPvWrite?(name: string, value: unknown): void | Promise<void>;

  /** Sets STATUS (INIT, RUN, PAUSED, END, ERROR). */
  setStatus(status: TaskStatus): void {
    if (!TASK_STATES.includes(status)) {
      throw new Error(`unknown task status "${status}": expected ${TASK_STATES.join("/")}`);
    }
    this.host.setPv("STATUS", status);
  }
}

/** Shape of a job result; a plain object of this shape may be returned instead of a JobResult. */
export interface JobResultLike {
  success: boolean;
  data?: unknown;
  message?: string;
}

/** Outcome of one job run. */
export class JobResult {
  readonly success: boolean;
  readonly data: unknown;
  readonly message: string;
  /** ISO-8601 time the result was created. */
  readonly timestamp: string;

  constructor(init: JobResultLike & { timestamp?: string }) {
    this.success = Boolean(init.success);
    this.data = init.data ?? null;
    this.message = init.message ?? "";
    this.timestamp = init.timestamp ?? new Date().toISOString();
  }

  /** A successful result. */
  static ok(data: unknown = null, message = "OK"): JobResult {
    return new JobResult({ success: true, data, message });
  }

  /** A failed result. */
  static fail(message: string, data: unknown = null): JobResult {
    return new JobResult({ success: false, data, message });
  }
}

/** A job: `execute()` runs once per `POST /api/v1/jobs/{name}/run` and returns a result. */
export abstract class JobBase extends PluginBase {
  /** Called once when the job is loaded. */
  abstract initialize(): void | Promise<void>;
  /** One run. A thrown error becomes a failed result with the error's message. */
  abstract execute(): JobResult | JobResultLike | Promise<JobResult | JobResultLike>;
  /** Optional: called when the job is removed or the server stops. */
  cleanup(): void | Promise<void> {}
  /** Optional, as for tasks: refuse a client write to an input PV by throwing. */
  onPvWrite?(name: string, value: unknown): void | Promise<void>;

  /** Sets STATUS (IDLE, RUNNING, SUCCESS, FAILED). */
  setStatus(status: JobStatus): void {
    if (!JOB_STATES.includes(status)) {
      throw new Error(`unknown job status "${status}": expected ${JOB_STATES.join("/")}`);
    }
    this.host.setPv("STATUS", status);
  }
}

/** Converts whatever a job's execute() returned into a JobResult (the runtime uses this). */
export function toJobResult(value: unknown): JobResult {
  if (value instanceof JobResult) return value;
  if (value && typeof value === "object" && "success" in value) {
    const v = value as JobResultLike & { timestamp?: unknown };
    return new JobResult({
      success: v.success === true,
      data: v.data,
      message: typeof v.message === "string" ? v.message : "",
    });
  }
  return JobResult.fail(
    `execute() returned ${value === undefined ? "nothing" : typeof value}: expected a JobResult or {success, data, message}`,
  );
}

export { LocalHost } from "./host.ts";
