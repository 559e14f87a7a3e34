/**
 * Device objects over the CA client: a generic device exposes its named signals (and any PV under
 * its prefix) as get/put/monitor; a motor adds readback, moveTo and stop.
 */
import type {
  CaClient,
  CaMonitor,
  CaReading,
  GetOptions,
  MonitorOptions,
  PutOptions,
} from "../../ffi/index.ts";
import { type DeviceKind, type DeviceTypeSpec, type SignalSpec, TML } from "./catalog.ts";

/** Thrown for a device-level mistake (unknown signal, read-only signal, bad position). */
export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceError";
  }
}

/** Where a device comes from in the values file, and its merged configuration. */
export interface DeviceInfo {
  /** Key under which the registry serves it (device name, or `{ioc}_{device}` on a clash). */
  name: string;
  /** IOC entry name in `epicsConfiguration.iocs`. */
  iocName: string;
  devgroup: string;
  devtype: string | undefined;
  /** PV prefix: `{iocprefix}[:{iocroot}]:{device}` (optionally under beamline/namespace). */
  prefix: string;
  /** IOC entry merged with the device entry (device keys win), as infn-ophyd-hal passes it. */
  config: Record<string, unknown>;
}

/** A point of interest: a named motor position from the values file (`poi` or `iocinit`). */
export interface PointOfInterest {
  name: string;
  pos: number;
}

/** A device with named signals; every PV under its prefix is reachable through `pv(suffix)`. */
export class Device {
  readonly name: string;
  readonly iocName: string;
  readonly devgroup: string;
  readonly devtype: string | undefined;
  readonly prefix: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly kind: DeviceKind;

  constructor(
    info: DeviceInfo,
    protected readonly spec: DeviceTypeSpec,
    protected readonly client: () => CaClient,
  ) {
    this.name = info.name;
    this.iocName = info.iocName;
    this.devgroup = info.devgroup;
    this.devtype = info.devtype;
    this.prefix = info.prefix;
    this.config = info.config;
    this.kind = spec.kind;
  }

  /** Names of the predefined signals of this device type. */
  signals(): string[] {
    return Object.keys(this.spec.signals);
  }

  private signal(name: string): SignalSpec {
    const s = Object.hasOwn(this.spec.signals, name) ? this.spec.signals[name] : undefined;
    if (!s) {
      const known = this.signals();
      throw new DeviceError(
        `device ${this.name} (${this.devgroup}/${this.devtype ?? "-"}) has no signal "${name}"` +
          (known.length ? `; known: ${known.join(", ")}` : "; use pv(suffix) for raw PVs"),
      );
    }
    return s;
  }

  /** Full PV name of a named signal. */
  pvName(signal: string): string {
    return this.prefix + this.signal(signal).suffix;
  }

  /** Full PV name for a raw suffix (e.g. ":TEMP" or ".DESC"). */
  pv(suffix: string): string {
    if (typeof suffix !== "string" || !/^[\x21-\x7e]*$/.test(suffix)) {
      throw new DeviceError(`invalid PV suffix ${JSON.stringify(suffix)}`);
    }
    return this.prefix + suffix;
  }

  /** Reads a named signal. */
  get(signal: string, opts?: GetOptions): Promise<CaReading> {
    try {
      return this.client().get(this.pvName(signal), opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Reads a named signal's value only. */
  async read(signal: string, opts?: GetOptions): Promise<CaReading["value"]> {
    return (await this.get(signal, opts)).value;
  }

  /** Writes a named signal; refuses signals the device type declares read-only. */
  put(signal: string, value: unknown, opts?: PutOptions): Promise<void> {
    try {
      const s = this.signal(signal);
      if (!s.writable) throw new DeviceError(`signal "${signal}" of ${this.name} is read-only`);
      return this.client().put(this.prefix + s.suffix, value, opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Subscribes to a named signal. */
  monitor(signal: string, opts?: MonitorOptions): CaMonitor {
    return this.client().monitor(this.pvName(signal), opts);
  }

  /** A JSON-friendly description (for REST listings and logs). */
  describe(): Record<string, unknown> {
    return {
      name: this.name,
      ioc: this.iocName,
      devgroup: this.devgroup,
      devtype: this.devtype ?? null,
      kind: this.kind,
      prefix: this.prefix,
      signals: Object.fromEntries(
        Object.entries(this.spec.signals).map(([k, s]) => [k, this.prefix + s.suffix]),
      ),
    };
  }
}

/** Options of MotorDevice.moveTo. */
export interface MoveOptions {
  /** Resolve only when the motion is complete (default true). */
  wait?: boolean;
  /** Seconds allowed for the whole move (default 120, as infn-ophyd-hal). */
  timeout?: number;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A motor: motor record (`.VAL`/`.RBV`/`.DMOV`/`.STOP`) or Technosoft TML command words. */
export class MotorDevice extends Device {
  /** Soft limits from the values file (`motor.dllm` / `motor.dhlm`), checked before moving. */
  readonly limits: { low: number; high: number };
  /** Named positions from the values file (`poi`, or `iocinit` as infn-ophyd-hal accepts). */
  readonly poi: readonly PointOfInterest[];

  constructor(info: DeviceInfo, spec: DeviceTypeSpec, client: () => CaClient) {
    super(info, spec, client);
    const m = (info.config.motor ?? {}) as Record<string, unknown>;
    this.limits = {
      low: num(m.dllm) ?? Number.NEGATIVE_INFINITY,
      high: num(m.dhlm) ?? Number.POSITIVE_INFINITY,
    };
    const raw = info.config.poi ?? info.config.iocinit;
    const list: PointOfInterest[] = [];
    if (Array.isArray(raw)) {
      for (const p of raw) {
        const o = p as Record<string, unknown>;
        const pos = num(o?.pos) ?? num(o?.value);
        if (typeof o?.name === "string" && pos !== undefined) list.push({ name: o.name, pos });
      }
    }
    this.poi = list;
  }

  /** Current position (readback). */
  async readback(): Promise<number> {
    return Number((await this.get("readback", { as: "value" })).value);
  }

  /** Whether the motor reports motion. */
  async isMoving(): Promise<boolean> {
    if (this.kind === "tml-motor") {
      return (Number(await this.read("status", { as: "value" })) & TML.MOVING_BIT) !== 0;
    }
    return Number(await this.read("doneMoving", { as: "value" })) === 0;
  }

  /** Resolves a position or point-of-interest name and checks the soft limits. */
  resolvePosition(target: number | string): number {
    let pos: number;
    if (typeof target === "string") {
      const p = this.poi.find((x) => x.name === target);
      if (!p) {
        throw new DeviceError(
          `${this.name}: unknown position "${target}"` +
            (this.poi.length ? `; known: ${this.poi.map((x) => x.name).join(", ")}` : ""),
        );
      }
      pos = p.pos;
    } else pos = target;
    if (typeof pos !== "number" || !Number.isFinite(pos)) {
      throw new DeviceError(`${this.name}: position must be a finite number, got ${String(pos)}`);
    }
    if (pos < this.limits.low || pos > this.limits.high) {
      throw new DeviceError(
        `${this.name}: position ${pos} outside soft limits [${this.limits.low}, ${this.limits.high}]`,
      );
    }
    return pos;
  }

  /**
   * Moves to an absolute position (or a named point of interest). A motor record is driven with a
   * put-with-completion on `.VAL`, which the record completes when the move ends; a TML motor gets
   * setpoint + ABS_POS + RUN and is then watched until its MSTA moving bit clears.
   */
  async moveTo(target: number | string, opts: MoveOptions = {}): Promise<void> {
    const pos = this.resolvePosition(target);
    const wait = opts.wait ?? true;
    const timeout = opts.timeout ?? 120;
    if (this.kind === "tml-motor") {
      await this.put("setpoint", pos, { wait: true, timeout });
      await this.put("action", TML.CMD_ABS_POS, { wait: true, timeout });
      await this.put("execute", TML.RUN, { wait: true, timeout });
      if (wait) await this.waitStopped(pos, timeout);
      return;
    }
    await this.put("setpoint", pos, { wait, timeout });
  }

  /** Stops the motion. */
  async stop(): Promise<void> {
    if (this.kind === "tml-motor") await this.put("execute", TML.STOP, { wait: true });
    else await this.put("stop", 1, { wait: true });
  }

  /**
   * Waits until a TML move has finished: MSTA's moving bit was seen set and is clear again, or it
   * never appeared and the readback already sits at the target (a null move). Bounded by
   * `timeout` even when MSTA never changes.
   */
  private waitStopped(target: number, timeout: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let seenMoving = false;
      let done = false;
      const finish = (err?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        m.close();
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(
        () =>
          finish(
            new DeviceError(`${this.name}: move to ${target} not finished after ${timeout} s`),
          ),
        timeout * 1000,
      );
      const m = this.monitor("status", {
        as: "value",
        onUpdate: (r) => {
          if ((Number(r.value) & TML.MOVING_BIT) !== 0) {
            seenMoving = true;
            return;
          }
          if (seenMoving) {
            finish();
            return;
          }
          this.readback().then(
            (p) => {
              if (Math.abs(p - target) <= 1e-9 * Math.max(1, Math.abs(target))) finish();
            },
            (e: Error) => finish(e),
          );
        },
      });
    });
  }

  override describe(): Record<string, unknown> {
    return { ...super.describe(), limits: this.limits, poi: this.poi };
  }
}
