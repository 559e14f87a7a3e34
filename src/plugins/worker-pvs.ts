/**
 * The plugin Worker's view of its PVs: the SdkHost the plugin's setPv/getPv/addPv calls reach.
 * Updates are batched per tick (last write per PV wins) and sent with {@link flush}.
 */
import { format } from "node:util";
import { errorMessage } from "../common/errors.ts";
import type { LogLevel, PvAlarm, PvDefinition, PvInput, SdkHost } from "../sdk/host.ts";
import type { SetUpdate, WorkerPvInfo } from "./protocol.ts";
import { SetEncoder } from "./set-batch.ts";
import { log, send } from "./worker-log.ts";

/** The plugin's PVs by short name, with the value the plugin last saw or set. */
export const pvs = new Map<string, WorkerPvInfo>();
const pending = new Map<string, SetUpdate>();
/** PV names the server already knows by id (see set-batch.ts: batches travel as columns). */
const encoder = new SetEncoder();
let flushScheduled = false;
let nextRequestId = 1;
/** addPv calls waiting for the main thread's reply, by request id. */
export const requests = new Map<
  number,
  { resolve: (data: unknown) => void; reject: (e: Error) => void }
>();

/** True while an update of PV `name` waits to be sent. */
export function hasPendingUpdate(name: string): boolean {
  return pending.has(name);
}

/** Sends the batched PV updates now. */
export function flush(): void {
  flushScheduled = false;
  if (pending.size === 0) return;
  const batch = encoder.encode(pending.values(), pending.size);
  pending.clear();
  send(batch);
}

function copyValue(v: PvInput): unknown {
  if (Array.isArray(v)) return [...v];
  if (ArrayBuffer.isView(v)) return (v as Float64Array | Int32Array | Uint8Array).slice();
  return v;
}

function localValue(info: WorkerPvInfo, v: PvInput): unknown {
  if (info.kind === "enum" && typeof v === "string" && info.states) {
    const i = info.states.indexOf(v);
    if (i >= 0) return i;
  }
  if (typeof v === "boolean") return v ? 1 : 0;
  return copyValue(v);
}

/** What the SDK calls in this Worker (setPv, getPv, hasPv, addPv, log). */
export const host: SdkHost = {
  setPv(name: string, value: PvInput, alarm?: PvAlarm): void {
    const info = pvs.get(name);
    if (!info) throw new Error(`unknown PV "${name}" (known: ${[...pvs.keys()].join(", ")})`);
    // Checked here, synchronously, so the plugin sees its mistake where it made it (a value that
    // cannot cross postMessage would otherwise fail later and take the whole batch with it).
    const t = typeof value;
    if (
      t !== "number" &&
      t !== "string" &&
      t !== "boolean" &&
      !Array.isArray(value) &&
      !ArrayBuffer.isView(value)
    ) {
      throw new TypeError(
        `setPv("${name}"): expected a number, string, boolean or array, got ${value === null ? "null" : t}`,
      );
    }
    const v = localValue(info, value);
    info.value = v;
    // Last write per PV per tick wins: monitors want the latest state, not every intermediate.
    pending.delete(name);
    const update: SetUpdate = [name, v];
    if (alarm) {
      update[2] = alarm.severity;
      if (alarm.status !== undefined) update[3] = alarm.status;
    }
    pending.set(name, update);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  },
  getPv(name: string): unknown {
    const info = pvs.get(name);
    if (!info) throw new Error(`unknown PV "${name}"`);
    return info.value;
  },
  hasPv(name: string): boolean {
    return pvs.has(name);
  },
  addPv(name: string, def: PvDefinition): Promise<void> {
    if (pvs.has(name)) return Promise.reject(new Error(`PV "${name}" already exists`));
    const id = nextRequestId++;
    flush();
    send({ t: "addPv", id, name, def });
    return new Promise<void>((resolve, reject) => {
      requests.set(id, {
        resolve: (current: unknown) => {
          pvs.set(name, {
            kind: def.kind,
            count: def.count ?? 1,
            writable: def.writable ?? false,
            ...(def.meta?.states ? { states: def.meta.states } : {}),
            value: current ?? def.initial ?? (def.kind === "string" ? "" : 0),
          });
          resolve();
        },
        reject,
      });
    });
  },
  log(level: LogLevel, bindings: Record<string, unknown>, args: unknown[]): void {
    let err: unknown;
    let extra: Record<string, unknown> = {};
    let rest = args;
    const first = args[0];
    if (first instanceof Error) {
      err = first;
      rest = args.slice(1);
    } else if (first !== null && typeof first === "object" && !Array.isArray(first)) {
      const o = first as Record<string, unknown>;
      if (o.err instanceof Error) err = o.err;
      const { err: _e, ...others } = o;
      extra = others;
      rest = args.slice(1);
    }
    const msg = rest.length > 0 ? format(...rest) : err ? errorMessage(err) : "";
    log(level, msg, err, safeBindings({ ...bindings, ...extra }));
  },
};

/** Keeps only what survives postMessage (drops functions, cyclic objects become a string). */
function safeBindings(b: Record<string, unknown>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(b)) as Record<string, unknown>;
  } catch {
    return { bindings: "[unserializable]" };
  }
}
