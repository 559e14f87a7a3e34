/**
 * Messages between the main thread and a plugin's Worker. Every request carrying an `id` gets
 * exactly one reply with the same `id`; unsolicited messages (set, log, hb) have none.
 */

import type { LogLevel, PluginContext, PvDefinition } from "../sdk/host.ts";
import type { SetBatch } from "./set-batch.ts";

/** Most addPv calls in one `addPv` message (the server refuses a larger batch whole). */
export const MAX_ADD_BATCH = 500;

/** What the worker knows about each PV: enough to validate names and map enum state names. */
export interface WorkerPvInfo {
  kind: string;
  count: number;
  writable: boolean;
  states?: string[];
  value: unknown;
}

/** Main → worker. */
export type ToWorker =
  | {
      t: "load";
      id: number;
      files: string[];
      /** "auto": whichever kind the single plugin class has (for validation without a kind). */
      kind: "task" | "job" | "auto";
    }
  /** The plugin's identity (what its constructor sees), plus what the runtime needs to start it. */
  | (Omit<PluginContext, "host"> & {
      t: "start";
      id: number;
      enabled: boolean;
      pvs: Record<string, WorkerPvInfo>;
      services: {
        beamlineValues: Record<string, unknown> | null;
        beamline: string | null;
        namespace: string | null;
        devices: boolean;
      };
      /** Longest initialize() may take before start fails (ms). */
      initTimeoutMs: number;
    })
  /** `timeoutMs`: how long onPvWrite may take before the write is refused. */
  | { t: "write"; id: number; pv: string; value: unknown; timeoutMs: number }
  | { t: "trigger"; id: number }
  /** `parameters`: overlaid on the job's own for this run only (an RPC call's arguments). */
  | { t: "runJob"; id: number; parameters?: Record<string, unknown> }
  | { t: "stop"; id: number; cleanupTimeoutMs: number }
  /** Reply to a worker request (an addPv batch). */
  | { t: "reply"; id: number; ok: boolean; message: string; data?: unknown };

/** Worker → main. */
export type FromWorker =
  | { t: "ready" }
  | { t: "reply"; id: number; ok: boolean; message: string; step?: string; data?: unknown }
  /** Batched setPv updates in columns (src/plugins/set-batch.ts). */
  | SetBatch
  /**
   * addPv calls in order (at most MAX_ADD_BATCH, worker-pvs.ts); the reply's `data` has one
   * [true, current value] or [false, reason] per call.
   */
  | { t: "addPv"; id: number; items: Array<[name: string, def: PvDefinition]> }
  | {
      t: "log";
      level: LogLevel;
      bindings: Record<string, unknown>;
      msg: string;
      err?: SerializedError;
    }
  | { t: "hb" }
  /** A plugin process is about to end because it hit a limit ("memory"). */
  | { t: "fatal"; reason: string };

/** One batched PV update: short name, value, optional explicit alarm. */
export type SetUpdate = [name: string, value: unknown, severity?: number, status?: number];

/** An error flattened for postMessage. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
}
