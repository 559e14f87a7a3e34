/**
 * The seam between the runtime and wherever a plugin's code runs. The pipeline and the PV bridge
 * talk to a plugin only through {@link PluginHost}: requests with one reply each (load, start,
 * write, trigger, runJob, stop) and events back (PV updates, addPv, watchdog, exit). A host is an
 * OS process of its own (host/process-host.ts, sandboxed: docs/security.md); host-default.ts picks
 * the factory.
 */
import type { Logger } from "pino";
import type { PvDefinition } from "../sdk/host.ts";
import type { SandboxConfig, SandboxLimits } from "./host/sandbox.ts";
import type { SetUpdate, ToWorker } from "./protocol.ts";

/** A reply of the plugin host. */
export interface HostReply {
  ok: boolean;
  message: string;
  step?: string;
  data?: unknown;
}

/** Distributive Omit, so each message variant keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** A request to the plugin host (the host numbers it). */
export type HostRequest = WithoutId<Exclude<ToWorker, { t: "reply" }>>;

/** Callbacks from the plugin host to the runtime. */
export interface HostEvents {
  onSet(updates: SetUpdate[]): void;
  /** Creates the PV; resolves with its current value (an autosaved one may differ from `initial`). */
  onAddPv(name: string, def: PvDefinition): Promise<unknown>;
  /** The host missed heartbeats for `watchdogMs` (blocked in synchronous code). */
  onUnresponsive(): void;
  /** Heartbeats came back after onUnresponsive. */
  onResponsive(): void;
  /** The host ended without being terminated by us; `reason` says why (for MESSAGE). */
  onExit(code: number, reason: string): void;
}

/** Timing knobs (tests shorten them). */
export interface HostTimings {
  readyTimeoutMs: number;
  watchdogMs: number;
}

/** Default timings: a host is declared unresponsive after 3 s without a heartbeat. */
export const DEFAULT_HOST_TIMINGS: HostTimings = { readyTimeoutMs: 30_000, watchdogMs: 3000 };

/** One plugin's running code, as the runtime sees it. */
export interface PluginHost {
  /** Resolves when the host is up (rejects after the ready timeout). */
  waitReady(): Promise<void>;
  /** Sends a request; a timeout or the host's end resolves with ok=false (never rejects). */
  request(msg: HostRequest, timeoutMs?: number): Promise<HostReply>;
  /** True while heartbeats are missing. */
  readonly isUnresponsive: boolean;
  /** True once the host has ended (terminated or exited). */
  readonly isEnded: boolean;
  /** The OS pid of the plugin's process, when it is one (resource use in the console). */
  readonly pid?: number | null;
  /** Ends the host at once (works even when the plugin is stuck in a synchronous loop). */
  terminate(): void;
}

/** What a host is started with. */
export interface HostOptions {
  log: Logger;
  events: HostEvents;
  timings: HostTimings;
  /** Environment variables the plugin must not see (API token, git tokens). */
  hiddenEnv: readonly string[];
  /** Plugin name (logs, process title, private directory). */
  name?: string;
  /** Operator's sandbox settings (default: host/sandbox.ts defaults). */
  sandbox?: SandboxConfig;
  /** This plugin's limits (default: the sandbox's). */
  limits?: SandboxLimits;
  /** Directories the plugin must be able to read under another uid (its clone). */
  codeDirs?: readonly string[];
}

/** Starts a plugin host. */
export type PluginHostFactory = (opts: HostOptions) => PluginHost;
