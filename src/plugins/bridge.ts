/**
 * The PV ↔ plugin bridge: what happens between a loaded plugin's host and its PVs once they exist.
 * Client writes go to the plugin (ENABLE and inputs through onPvWrite, RUN through execute());
 * the plugin's batched setPv updates and addPv calls come back to the registry; the watchdog and
 * an unexpected end show on STATUS/MESSAGE; autosaved values are restored and kept up to date.
 */
import type { Logger } from "pino";
import { errorMessage } from "../common/errors.ts";
import { isPlainObject } from "../common/object.ts";
import { now, truncateUtf8 } from "../pv/pv.ts";
import type { PvRegistry } from "../pv/registry.ts";
import {
  DBE,
  type PostOptions,
  type PvSpec,
  type PvValue,
  type Timestamp,
  type WriteContext,
} from "../pv/types.ts";
import type { PvDefinition } from "../sdk/host.ts";
import type { StateStore } from "../state/index.ts";
import { defaultPvNames } from "./config.ts";
import { PV_NAME_RE } from "./config-schema.ts";
import type { HostEvents } from "./host.ts";
import type { LoadedPlugin, PluginPv } from "./plugin.ts";
import type { SetUpdate, WorkerPvInfo } from "./protocol.ts";

/**
 * Most PVs of its own one plugin may have (declared in config.yaml plus addPv; the default PVs
 * the server makes for every plugin — STATUS, MESSAGE, ENABLE… — do not count): a runaway addPv
 * loop stops here, and a plugin can still make the 10,000 PVs a site may ask of one IOC.
 */
export const MAX_PVS_PER_PLUGIN = 10_000;

/** PVs of `p` that count against {@link MAX_PVS_PER_PLUGIN}: all but the server-made defaults. */
export function ownPvCount(p: LoadedPlugin): number {
  let defaults = 0;
  for (const name of defaultPvNames(p.kind)) {
    const pp = p.pvs.get(name);
    // A name the kind does not get by default (a continuous task's RUN, say) that the plugin
    // added itself is its own.
    if (pp !== undefined && pp.runtime !== true) defaults++;
  }
  return p.pvs.size - defaults;
}

/** Longest MESSAGE (EPICS string). */
const MESSAGE_MAX = 39;

/** A MESSAGE value: cut to what an EPICS string holds, on a character boundary. */
export function messageText(s: string): string {
  return truncateUtf8(s, MESSAGE_MAX);
}

/** JSON-friendly copy of a PV value (typed arrays become arrays). */
export function jsonValue(v: PvValue): unknown {
  if (typeof v === "object") return Array.from(v as ArrayLike<number>);
  return v;
}

/** Shows a failure on the plugin's STATUS (ERROR for tasks, FAILED for jobs) and MESSAGE. */
export function showFailure(p: LoadedPlugin, message: string): void {
  p.pvs.get("STATUS")?.pv.post(p.kind === "task" ? "ERROR" : "FAILED");
  p.pvs.get("MESSAGE")?.pv.post(messageText(message));
}

/** The post options of a setPv update that names its alarm (severity, maybe status). */
function alarmOptions(u: SetUpdate, timestamp: Timestamp): PostOptions {
  return u[3] !== undefined
    ? { severity: u[2] as 0, status: u[3] as 0, timestamp }
    : { severity: u[2] as 0, timestamp };
}

/** What the bridge works with. */
export interface BridgeDeps {
  registry: PvRegistry;
  state: StateStore;
  /** For failures that belong to no single request (autosave). */
  logger: Logger;
  /** How long a client write may wait for onPvWrite. */
  writeTimeoutMs: number;
  /** A running plugin's process ended by itself (the controller restarts or quarantines it). */
  onProcessEnd?(p: LoadedPlugin, code: number, log: Logger): void;
}

/** Connects loaded plugins to their PVs. */
export class PvBridge {
  constructor(private readonly deps: BridgeDeps) {}

  /** The events a plugin's host delivers, applied to plugin `p`. */
  hostEvents(p: LoadedPlugin, log: Logger): HostEvents {
    return {
      onSet: (updates) => {
        // Applied on the main thread while CA requests wait, so per PV as little as possible: one
        // clock read for the whole batch (its PVs share the time the batch was applied; per PV
        // it cost two clock reads) and one options object, an indexed loop (destructuring each
        // tuple runs the array iterator), no object for the common update without an alarm.
        const at = now();
        const plain: PostOptions = { timestamp: at };
        for (let i = 0; i < updates.length; i++) {
          const u = updates[i] as SetUpdate;
          const pp = p.pvs.get(u[0]);
          if (!pp) {
            log.warn({ pv: u[0] }, "setPv on an unknown PV ignored");
            continue;
          }
          try {
            pp.pv.post(u[1], u[2] === undefined ? plain : alarmOptions(u, at));
          } catch (e) {
            log.warn({ pv: u[0] }, `setPv ${u[0]}: ${errorMessage(e)}`);
          }
        }
      },
      onAddPv: async (name, def) => this.addRuntimePv(p, name, def),
      onUnresponsive: () => {
        const status = p.pvs.get("STATUS")?.pv;
        const message = p.pvs.get("MESSAGE")?.pv;
        if (!status || !message || p.stopped) return;
        p.beforeWatchdog = { status: status.value, message: message.value };
        showFailure(p, "unresponsive: blocked (watchdog)");
      },
      onResponsive: () => {
        const b = p.beforeWatchdog;
        p.beforeWatchdog = null;
        if (!b || p.stopped) return;
        p.pvs.get("STATUS")?.pv.post(b.status);
        p.pvs.get("MESSAGE")?.pv.post(b.message);
        log.info("plugin responsive again");
      },
      onExit: (code, reason) => {
        if (p.stopped) return;
        showFailure(p, reason);
        this.deps.onProcessEnd?.(p, code, log);
      },
    };
  }

  /** The write handler of a plugin PV: ENABLE, RUN and inputs go through the host. */
  writeHandler(p: LoadedPlugin, short: string): (value: PvValue) => Promise<void> {
    if (p.kind === "task" && short === "RUN") {
      return async (value: PvValue): Promise<void> => {
        if (value === 0) return;
        if (p.triggerBusy) throw new Error("busy: the previous execute() is still running");
        if (p.host.isUnresponsive) throw new Error("plugin unresponsive: trigger refused");
        const pv = p.pvs.get("RUN")?.pv;
        p.triggerBusy = true;
        pv?.post(1);
        try {
          // No timeout: the put completes when execute() does (caput -c semantics).
          const r = await p.host.request({ t: "trigger" });
          if (!r.ok) throw new Error(r.message);
        } finally {
          p.triggerBusy = false;
          pv?.post(0);
        }
      };
    }
    const timeoutMs = this.deps.writeTimeoutMs;
    return async (value: PvValue, ctx?: WriteContext): Promise<void> => {
      if (p.host.isUnresponsive) throw new Error("plugin unresponsive: write refused");
      // The host times out onPvWrite itself (clear message); the extra second here covers a
      // host too busy to answer at all.
      const r = await p.host.request({ t: "write", pv: short, value, timeoutMs }, timeoutMs + 1000);
      if (!r.ok) throw new Error(r.message);
      // An accepted write of an autosaved PV is on disk before the put completes (caput -c sees
      // it only then; a value that cannot be stored fails the put). A protocol that says the
      // client waits for no answer (notify: false) keeps the batched autosave alone.
      const pp = p.pvs.get(short);
      if (pp?.autosave && ctx?.notify !== false) {
        await this.deps.state.saveDurable(p.name, short, jsonValue(value));
      }
    };
  }

  /** Puts back values kept across a restart (`keep`) or autosaved ones, then watches autosave. */
  restoreValues(p: LoadedPlugin, keep: Map<string, PvValue> | null, log: Logger): void {
    for (const pp of p.pvs.values()) {
      let v: unknown;
      if (keep?.has(pp.short)) v = keep.get(pp.short);
      else if (pp.autosave && Object.hasOwn(p.autosaved, pp.short)) v = p.autosaved[pp.short];
      else continue;
      try {
        pp.pv.post(v);
      } catch (e) {
        log.warn({ pv: pp.short }, `saved value not restored: ${errorMessage(e)}`);
      }
    }
    for (const pp of p.pvs.values()) this.watchAutosave(p, pp);
  }

  private watchAutosave(p: LoadedPlugin, pp: PluginPv): void {
    if (!pp.autosave) return;
    p.unsubs.push(
      pp.pv.subscribe((mask) => {
        if ((mask & (DBE.VALUE | DBE.LOG)) === 0) return;
        try {
          this.deps.state.saveAutosave(p.name, pp.short, jsonValue(pp.pv.value));
        } catch (err) {
          this.deps.logger.warn({ err, plugin: p.name }, "autosave failed");
        }
      }),
    );
  }

  /** What the host is told about each PV at start. */
  hostPvs(p: LoadedPlugin): Record<string, WorkerPvInfo> {
    const out: Record<string, WorkerPvInfo> = {};
    for (const [short, { pv }] of p.pvs) {
      out[short] = {
        kind: pv.kind,
        count: pv.count,
        writable: pv.writable,
        ...(pv.meta.states ? { states: [...pv.meta.states] } : {}),
        value: pv.value,
      };
    }
    return out;
  }

  /** addPv from a plugin: validated like config.yaml PVs; resolves with the PV's current value. */
  private async addRuntimePv(p: LoadedPlugin, name: string, def: PvDefinition): Promise<unknown> {
    if (p.stopped) throw new Error("plugin is stopping");
    if (typeof name !== "string" || !PV_NAME_RE.test(name)) {
      throw new Error(
        `invalid PV name ${JSON.stringify(name)}: letters, digits, _-+:.[]<>; (≤ 60)`,
      );
    }
    const prior = p.pvs.get(name);
    if (prior?.adoptable) {
      // A restarted process re-creating a PV its previous process added: it gets the same PV.
      prior.adoptable = false;
      return prior.pv.value;
    }
    if (prior) throw new Error(`PV "${name}" already exists`);
    if (ownPvCount(p) >= MAX_PVS_PER_PLUGIN) {
      throw new Error(
        `too many PVs: a plugin may have at most ${MAX_PVS_PER_PLUGIN} of its own (declared plus addPv; ${name} refused)`,
      );
    }
    if (!isPlainObject(def)) throw new Error("addPv: definition must be an object");
    const spec: PvSpec = {
      name: `${p.prefix}:${name}`,
      kind: def.kind,
      ...(def.count !== undefined ? { count: def.count } : {}),
      writable: def.writable === true,
      ...(def.initial !== undefined ? { initial: def.initial as PvValue } : {}),
      ...(def.meta !== undefined ? { meta: def.meta as PvSpec["meta"] } : {}),
      // The operator-approved group of the plugin: plugin code cannot choose one.
      ...(p.asg !== undefined ? { asg: p.asg } : {}),
    };
    const pv = this.deps.registry.add(spec, spec.writable ? this.writeHandler(p, name) : undefined);
    const pp: PluginPv = {
      short: name,
      pv,
      autosave: def.autosave ?? spec.writable === true,
      runtime: true,
    };
    p.pvs.set(name, pp);
    if (pp.autosave && Object.hasOwn(p.autosaved, name)) {
      try {
        pv.post(p.autosaved[name]);
      } catch {
        // A saved value that no longer fits the new definition is dropped.
      }
    }
    this.watchAutosave(p, pp);
    return pv.value;
  }
}
