/**
 * `iocmng/testing`: runs a plugin's lifecycle without a server, against in-memory PVs, so plugin
 * authors can unit-test with `bun test`. It follows the runtime's rules: default PVs per kind,
 * STATUS/MESSAGE transitions, CYCLE_COUNT, execute() errors recorded and the loop going on, a
 * job's thrown error turned into a failed result.
 */
import {
  constructWithContext,
  type LogLevel,
  type PvInput,
  type SdkHost,
} from "../../../src/sdk/host.ts";
import { JobBase, type JobResult, TaskBase, toJobResult } from "../../../src/sdk/index.ts";

/** A log line the plugin wrote through `this.logger`. */
export interface LoggedLine {
  level: LogLevel;
  bindings: Record<string, unknown>;
  args: unknown[];
}

/** What `beforeCycle` can do between cycles: act as an operator. */
export interface OperatorControl<P> {
  plugin: P;
  /** A CA client write: goes through `onPvWrite` (which may refuse by throwing), then is stored. */
  write(pv: string, value: unknown): Promise<void>;
  /** Current value of a PV (short name). */
  read(pv: string): unknown;
}

/** Options of {@link runLifecycle}. */
export interface LifecycleOptions<P> {
  /** Plugin name (default: the class name). */
  name?: string;
  /** PV prefix (default: the name upper-cased). */
  prefix?: string;
  /** As from config.yaml + REST overrides. */
  parameters?: Record<string, unknown>;
  /** Initial values of the plugin's own PVs by short name; only these (and the defaults) exist. */
  pvs?: Record<string, unknown>;
  /** Tasks: how many times to call execute() (default 1). Jobs always run once. */
  cycles?: number;
  /** Called before each execute() with the 0-based cycle index, e.g. to write an input PV. */
  beforeCycle?: (cycle: number, ctl: OperatorControl<P>) => void | Promise<void>;
  /** Skip cleanup() (to inspect a plugin mid-life). Default false. */
  skipCleanup?: boolean;
}

/** A failure in one lifecycle phase. */
export interface PhaseError {
  phase: "initialize" | "execute" | "cleanup" | "write";
  cycle?: number;
  message: string;
  error: unknown;
}

/** Everything observable after {@link runLifecycle}. */
export interface LifecycleRun<P> {
  plugin: P;
  /** Final PV values by short name (defaults included). */
  pvs: Record<string, unknown>;
  /** Every value each PV took, in order (initial value first). */
  history: Record<string, unknown[]>;
  /** The job's result (jobs only). */
  result?: JobResult;
  /** execute() calls that completed without throwing. */
  cycles: number;
  /** The first failure, if any (later ones are in `errors`). */
  error?: PhaseError;
  errors: PhaseError[];
  logs: LoggedLine[];
}

const TASK_DEFAULTS = { ENABLE: 1, STATUS: "INIT", MESSAGE: "", CYCLE_COUNT: 0, RUN: 0 };
const JOB_DEFAULTS = { STATUS: "IDLE", MESSAGE: "" };

class MemoryHost implements SdkHost {
  readonly values = new Map<string, unknown>();
  readonly history = new Map<string, unknown[]>();
  readonly logs: LoggedLine[] = [];

  constructor(initial: Record<string, unknown>) {
    for (const [k, v] of Object.entries(initial)) this.store(k, v);
  }
  store(name: string, value: unknown): void {
    this.values.set(name, value);
    const h = this.history.get(name);
    if (h) h.push(value);
    else this.history.set(name, [value]);
  }
  setPv(name: string, value: PvInput): void {
    if (!this.values.has(name)) {
      throw new Error(`unknown PV "${name}" (declare it in runLifecycle's pvs option)`);
    }
    this.store(name, value);
  }
  getPv(name: string): unknown {
    if (!this.values.has(name)) {
      throw new Error(`unknown PV "${name}" (declare it in runLifecycle's pvs option)`);
    }
    return this.values.get(name);
  }
  hasPv(name: string): boolean {
    return this.values.has(name);
  }
  async addPv(name: string, def: { initial?: PvInput; kind: string }): Promise<void> {
    if (this.values.has(name)) throw new Error(`PV "${name}" already exists`);
    this.store(name, def.initial ?? (def.kind === "string" ? "" : 0));
  }
  log(level: LogLevel, bindings: Record<string, unknown>, args: unknown[]): void {
    this.logs.push({ level, bindings, args });
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The 39-byte MESSAGE the runtime would show (bytes, not characters). */
function shortMessage(s: string): string {
  const b = new TextEncoder().encode(s);
  if (b.length <= 39) return s;
  let end = 39;
  while (end > 0 && ((b[end] ?? 0) & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(b.subarray(0, end));
}

/**
 * Constructs `PluginClass` with an in-memory host and runs initialize → execute (× cycles for a
 * task, once for a job) → cleanup, as the server would. Never throws for plugin errors: they are
 * in `run.error`/`run.errors` (and a job's in `run.result`).
 */
export async function runLifecycle<P extends TaskBase | JobBase>(
  PluginClass: new () => P,
  opts: LifecycleOptions<P> = {},
): Promise<LifecycleRun<P>> {
  const isTask = PluginClass.prototype instanceof TaskBase;
  const isJob = PluginClass.prototype instanceof JobBase;
  if (!isTask && !isJob) {
    throw new TypeError(`${PluginClass.name} does not extend TaskBase or JobBase from "iocmng"`);
  }
  const defaults = isTask ? TASK_DEFAULTS : JOB_DEFAULTS;
  for (const name of Object.keys(opts.pvs ?? {})) {
    if (Object.hasOwn(defaults, name)) {
      throw new Error(`"${name}" is a default PV of every ${isTask ? "task" : "job"}`);
    }
  }
  const host = new MemoryHost({ ...defaults, ...opts.pvs });
  const parameters = { ...opts.parameters };
  const name = opts.name ?? PluginClass.name;
  const interval = Number(parameters.interval);
  const plugin = constructWithContext(PluginClass, {
    name,
    kind: isTask ? "task" : "job",
    prefix: opts.prefix ?? name.toUpperCase(),
    parameters,
    mode: parameters.mode === "triggered" ? "triggered" : "continuous",
    interval: Number.isFinite(interval) && interval > 0 ? interval : 1,
    host,
  });
  const errors: PhaseError[] = [];
  const fail = (phase: PhaseError["phase"], error: unknown, cycle?: number) => {
    const message = messageOf(error);
    errors.push(cycle === undefined ? { phase, message, error } : { phase, cycle, message, error });
    host.store("STATUS", isTask ? "ERROR" : "FAILED");
    host.store("MESSAGE", shortMessage(message));
  };
  const ctl: OperatorControl<P> = {
    plugin,
    read: (pv) => host.getPv(pv),
    async write(pv, value) {
      if (!host.hasPv(pv)) throw new Error(`unknown PV "${pv}"`);
      await plugin.onPvWrite?.(pv, value);
      host.store(pv, value);
    },
  };

  let cycles = 0;
  let result: JobResult | undefined;
  let initialised = false;
  try {
    await plugin.initialize();
    initialised = true;
  } catch (e) {
    fail("initialize", e);
  }
  if (initialised && plugin instanceof TaskBase) {
    host.store("STATUS", "RUN");
    const total = opts.cycles ?? 1;
    let calls = 0;
    for (let i = 0; i < total; i++) {
      try {
        await opts.beforeCycle?.(i, ctl);
      } catch (e) {
        fail("write", e, i);
        continue;
      }
      try {
        await plugin.execute();
        cycles++;
        // A good cycle after a failed one clears the ERROR state, as the runtime does.
        if (host.getPv("STATUS") === "ERROR") host.store("STATUS", "RUN");
      } catch (e) {
        fail("execute", e, i);
      } finally {
        // CYCLE_COUNT counts every execute(), failed ones included (the runtime's rule).
        calls++;
        plugin._cycleCount = calls;
        host.store("CYCLE_COUNT", calls);
      }
    }
  } else if (initialised && plugin instanceof JobBase) {
    host.store("STATUS", "RUNNING");
    try {
      await opts.beforeCycle?.(0, ctl);
      result = toJobResult(await plugin.execute());
      cycles = 1;
    } catch (e) {
      result = toJobResult({ success: false, data: null, message: messageOf(e) });
      errors.push({ phase: "execute", cycle: 0, message: messageOf(e), error: e });
    }
    host.store("STATUS", result.success ? "SUCCESS" : "FAILED");
    host.store("MESSAGE", shortMessage(result.message));
  }
  if (!opts.skipCleanup) {
    try {
      await plugin.cleanup();
    } catch (e) {
      fail("cleanup", e);
    }
    // The runtime ends a removed task in END whatever cleanup() did (its error is logged).
    if (isTask) host.store("STATUS", "END");
  }
  const run: LifecycleRun<P> = {
    plugin,
    pvs: Object.fromEntries(host.values),
    history: Object.fromEntries(host.history),
    cycles,
    errors,
    logs: host.logs,
  };
  if (result !== undefined) run.result = result;
  if (errors[0] !== undefined) run.error = errors[0];
  return run;
}
