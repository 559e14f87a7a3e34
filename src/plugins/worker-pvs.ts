/**
 * The plugin Worker's view of its PVs: the SdkHost the plugin's setPv/getPv/addPv calls reach.
 * Updates are batched per tick (last write per PV wins) and sent with {@link flush}.
 */
import { format } from "node:util";
import { errorMessage } from "../common/errors.ts";
import type { LogLevel, PvAlarm, PvDefinition, PvInput, PvKindName, SdkHost } from "../sdk/host.ts";
import { MAX_ADD_BATCH, type SetUpdate, type WorkerPvInfo } from "./protocol.ts";
import { SetEncoder } from "./set-batch.ts";
import { log, send } from "./worker-log.ts";

/** The plugin's PVs by short name, with the value the plugin last saw or set. */
export const pvs = new Map<string, WorkerPvInfo>();
const pending = new Map<string, SetUpdate>();
/** PV names the server already knows by id (see set-batch.ts: batches travel as columns). */
const encoder = new SetEncoder();
let flushScheduled = false;
let nextRequestId = 1;
/** addPv batches waiting for the main thread's reply, by request id. */
export const requests = new Map<
  number,
  { resolve: (data: unknown) => void; reject: (e: Error) => void }
>();

/** An addPv call not answered yet. */
interface QueuedAdd {
  name: string;
  def: PvDefinition;
  resolve: () => void;
  reject: (e: Error) => void;
}
/**
 * addPv calls travel in batches (protocol.ts, `addPv`), one batch in flight at a time: a plugin
 * adding 10,000 PVs at once sends 20 messages, not 10,000, and neither side's IPC buffers grow to
 * hold them all (measured: 3.5 MB more memory kept in the plugin process for 10,000 PVs added in
 * one go as single messages; docs/benchmarks.md, "Product-path memory").
 */
const addQueue: QueuedAdd[] = [];
let addInFlight = false;
let addScheduled = false;

/** Sends the next batch of queued addPv calls unless one is already waiting for its reply. */
function sendAdds(): void {
  addScheduled = false;
  if (addInFlight || addQueue.length === 0) return;
  const batch = addQueue.splice(0, MAX_ADD_BATCH);
  const id = nextRequestId++;
  addInFlight = true;
  const done = (): void => {
    addInFlight = false;
    sendAdds();
  };
  requests.set(id, {
    resolve: (data: unknown) => {
      settleAdds(batch, Array.isArray(data) ? data : []);
      done();
    },
    reject: (e: Error) => {
      for (const a of batch) a.reject(e);
      done();
    },
  });
  // PV updates made before these addPv calls reach the server first, as before batching.
  flush();
  send({ t: "addPv", id, items: batch.map((a) => [a.name, a.def]) });
}

const KINDS = new Map<string, string>(
  (["double", "long", "string", "enum", "char"] satisfies PvKindName[]).map((k) => [k, k]),
);

/** Each call of `batch` resolves or rejects with its own outcome ([true, value] / [false, why]). */
function settleAdds(batch: QueuedAdd[], results: unknown[]): void {
  for (let i = 0; i < batch.length; i++) {
    const a = batch[i] as QueuedAdd;
    const r = results[i];
    if (!Array.isArray(r) || r[0] !== true) {
      const why = Array.isArray(r) && typeof r[1] === "string" ? r[1] : "addPv: no answer";
      a.reject(new Error(why));
      continue;
    }
    const def = a.def;
    pvs.set(a.name, {
      // The copy's kind is a string of its own per PV: one shared string per kind instead.
      kind: KINDS.get(def.kind) ?? def.kind,
      count: def.count ?? 1,
      writable: def.writable ?? false,
      ...(def.meta?.states ? { states: def.meta.states } : {}),
      value: r[1] ?? def.initial ?? (def.kind === "string" ? "" : 0),
    });
    a.resolve();
  }
}

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

/** The first PV names, for an error: a plugin with 10,000 PVs must not build a 70 KB message. */
function knownNames(): string {
  const first: string[] = [];
  for (const n of pvs.keys()) {
    if (first.length === 20) return `${first.join(", ")} … ${pvs.size} in all`;
    first.push(n);
  }
  return first.join(", ");
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
    if (!info) throw new Error(`unknown PV "${name}" (known: ${knownNames()})`);
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
    // A copy taken now, as sending at once did: the plugin may change its object afterwards, and
    // a definition that cannot cross the pipe fails here, alone, not the batch it would travel in.
    let copy: PvDefinition;
    try {
      copy = structuredClone(def);
    } catch (e) {
      return Promise.reject(
        new TypeError(`addPv("${name}"): the definition cannot be sent: ${errorMessage(e)}`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      addQueue.push({ name, def: copy, resolve, reject });
      // The calls of this turn go together (a loop of addPv, then Promise.all).
      if (!addScheduled && !addInFlight) {
        addScheduled = true;
        queueMicrotask(sendAdds);
      }
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
