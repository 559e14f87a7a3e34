/**
 * `DeclarativeTask`: the task class behind config-only plugins (a directory holding just
 * config.yaml), and a base class for code plugins that want links, rules and transforms too
 * (`class X extends DeclarativeTask`, overriding `onInputChanged` and calling `super` in
 * initialize/execute/cleanup/onPvWrite if they override those).
 *
 * Built by a factory over TaskBase (`defineDeclarativeTask(TaskBase)` in the SDK module) so this
 * file has no runtime import of the SDK module and no import cycle. It runs wherever tasks run
 * (the plugin Worker today, a plugin process tomorrow): it only uses the SDK surface (setPv,
 * getPv, this.ca, logger) and the spec the framework hands over in the plugin context.
 *
 * Per mode (as 2.7.9; docs/plugins.md, "What one cycle does"):
 * - continuous: each cycle applies CLEAR/RESET, probes disconnected links, polls `poll` links,
 *   runs transforms and rules, then the subclass's own work.
 * - reactive: the framework runs execute() every `interval` as a heartbeat (CLEAR/RESET, probes,
 *   CYCLE_COUNT); a changed value of a `trigger: true` link runs transforms and rules at once.
 * - triggered: each RUN does what a continuous cycle does (upstream ran no links or rules there).
 */
import type { PvInput } from "../sdk/host.ts";
import { currentContext } from "../sdk/host.ts";
import type { TaskBase } from "../sdk/index.ts";
import { Engine } from "./engine.ts";
import { Links } from "./links.ts";
import type { DeclarativeSpec, PortValue } from "./spec.ts";

/** MESSAGE texts of 2.7.9, which operator screens may match on. */
export const MESSAGES = {
  running: "Task running",
  paused: "Task paused",
  reset: "Task reset",
} as const;

/** The public surface of DeclarativeTask (what plugin code and declarations see). */
export interface DeclarativeTaskApi extends TaskBase {
  /** The declarative part of config.yaml (null when the plugin has none). */
  readonly declarative: DeclarativeSpec | null;
  /** `mode: reactive`: link changes drive evaluation; execute() is a heartbeat. */
  readonly reactive: boolean;
  initialize(): Promise<void>;
  execute(): Promise<void>;
  cleanup(): Promise<void>;
  /** A `trigger: true` link changed value; override in code plugins. */
  onInputChanged(name: string, value: PortValue, old: PortValue): void | Promise<void>;
  onPvWrite(name: string, value: unknown): void | Promise<void>;
  onEnable(enabled: boolean): void;
}

/** The DeclarativeTask class type. */
export type DeclarativeTaskClass = new () => DeclarativeTaskApi;

/** The concrete task class a config-only plugin runs; see the file comment. */
export function defineDeclarativeTask(Base: abstract new () => TaskBase): DeclarativeTaskClass {
  // The cast only drops `abstract`: this class implements every abstract member.
  const Concrete = Base as unknown as new () => TaskBase;
  class DeclarativeTask extends Concrete {
    /** The declarative part of config.yaml (null when the plugin has none). */
    readonly declarative: DeclarativeSpec | null;
    /** `mode: reactive`: link changes drive evaluation; execute() is a heartbeat. */
    readonly reactive: boolean;
    /** @internal */
    _engine: Engine | null = null;
    /** @internal */
    _links: Links | null = null;
    /** @internal CLEAR/RESET written, applied at the start of the next cycle (heartbeat). */
    _pending = { clear: false, reset: false };
    /** @internal */
    _enabled = true;

    constructor() {
      super();
      this.declarative = currentContext()?.declarative ?? null;
      this.reactive = this.declarative?.mode === "reactive";
    }

    /** Connectivity check of the wired inputs, then monitors. Call super when overriding. */
    async initialize(): Promise<void> {
      const spec = this.declarative;
      if (!spec) return;
      const engine = new Engine(spec, this._io(), this.parameters);
      this._engine = engine;
      this._links = new Links(engine, () => this.ca, {
        timeout: spec.timeout,
        retryInterval: spec.retryInterval,
        onTrigger: (name, value, old) => this._triggered(name, value, old),
        log: (level, msg) => this.logger[level](msg),
      });
      if (spec.ports.some((p) => p.link !== undefined)) {
        this.setMessage("Checking connectivity...");
        await this._links.initialCheck();
        this._links.openMonitors();
      }
      this.setMessage(engine.connectivityMessage());
    }

    /** One cycle (continuous, triggered) or heartbeat (reactive). Call super when overriding. */
    async execute(): Promise<void> {
      const engine = this._engine;
      const links = this._links;
      if (!engine || !links) return;
      await this._applyRequests();
      await links.probe();
      if (this.reactive) return;
      await links.poll();
      engine.evaluate();
    }

    /** Closes this plugin's monitors. Call super when overriding. */
    async cleanup(): Promise<void> {
      this._links?.close();
    }

    /**
     * A `trigger: true` link changed value (polls, monitors, probes). Override in code plugins;
     * in reactive mode transforms and rules have already run when this is called.
     */
    onInputChanged(_name: string, _value: PortValue, _old: PortValue): void | Promise<void> {}

    /** CLEAR and RESET requests; other writes are accepted. Call super when overriding. */
    override onPvWrite(name: string, value: unknown): void | Promise<void> {
      if ((name !== "CLEAR" && name !== "RESET") || Number(value) !== 1) return;
      this._pending[name === "CLEAR" ? "clear" : "reset"] = true;
      // Triggered tasks have no loop to pick the request up: apply it now, after the write lands.
      if (this.mode === "triggered") setTimeout(() => void this._applyRequests(), 0);
    }

    /** ENABLE changed (called by the runtime): monitors closed while disabled, as 2.7.9 does. */
    override onEnable(enabled: boolean): void {
      this._enabled = enabled;
      if (!this._links) return;
      if (enabled) this._links.openMonitors();
      else this._links.closeMonitors();
      this.setMessage(enabled ? MESSAGES.running : MESSAGES.paused);
    }

    /** @internal */
    _io() {
      return {
        setLocal: (
          name: string,
          value: PortValue | number[],
          alarm?: { severity: number; status: number },
        ) => {
          if (this.hasPv(name)) this.setPv(name, value as PvInput, alarm);
        },
        getLocal: (name: string) => (this.hasPv(name) ? this.getPv(name) : undefined),
        putLink: (name: string, value: PortValue) => this._links?.put(name, value),
        log: (level: "debug" | "info" | "warn" | "error", msg: string) => this.logger[level](msg),
      };
    }

    /** @internal */
    _triggered(name: string, value: PortValue, old: PortValue): void {
      if (this.reactive && this._enabled) this._engine?.evaluate();
      try {
        const r = this.onInputChanged(name, value, old);
        if (r instanceof Promise)
          r.catch((e: unknown) =>
            this.logger.error(`onInputChanged(${name}): ${(e as Error).message}`),
          );
      } catch (e) {
        this.logger.error(`onInputChanged(${name}): ${(e as Error).message}`);
      }
    }

    /** @internal CLEAR releases latches; RESET also restarts the counter and rechecks links. */
    async _applyRequests(): Promise<void> {
      const { clear, reset } = this._pending;
      if (!clear && !reset) return;
      this._pending = { clear: false, reset: false };
      this._engine?.clear();
      if (reset) {
        this._cycleCount = 0;
        if (this.hasPv("CYCLE_COUNT")) this.setPv("CYCLE_COUNT", 0);
        await this._links?.initialCheck();
      }
      await this._links?.probe(true);
      if (clear) this.setPv("CLEAR", 0);
      if (reset) {
        this.setPv("RESET", 0);
        this.setMessage(MESSAGES.reset);
      }
    }
  }
  return DeclarativeTask;
}
