/**
 * Other IOCs' PVs for the PV Web Socket, through the server's Channel Access client (libca via
 * ffi/), so a site needs no separate PVWS service next to iocmng.
 *
 * Each remote name is watched by two CA monitors: a DBR_CTRL one with DBE_PROPERTY for the
 * metadata (units, limits, enum labels; it also delivers the first reading on connect) and a
 * DBR_TIME one with DBE_VALUE|DBE_ALARM for value, alarm and the IOC's timestamp. They feed a
 * stand-alone `Pv` of our model (never added to the registry, so CA/PVA do not re-serve it), which
 * the PVWS sessions subscribe to like a local PV. A write goes out as a CA put with completion.
 * Watches no session uses any more are closed by `sweep()`.
 */
import type { CaReading } from "../../ffi/dbr.ts";
import { now, Pv } from "../pv/pv.ts";
import { AlarmStatus, type PvKind, type PvMeta, type PvSpec, Severity } from "../pv/types.ts";

/** What this needs of the CA client (`LibcaClient` fits). */
export interface RemoteCaClient {
  monitor(
    name: string,
    opts: { as?: "value" | "time" | "ctrl"; mask?: number; onUpdate?: (r: CaReading) => void },
  ): { close(): void };
  put(name: string, value: unknown, opts?: { wait?: boolean; timeout?: number }): Promise<void>;
  onConnection(name: string, cb: (connected: boolean) => void): () => void;
}

interface Watch {
  pv: Pv | undefined;
  /** A TIME reading that came before the CTRL one (posted once the Pv exists). */
  pending: CaReading | undefined;
  waiters: Set<(pv: Pv) => void>;
  close: () => void;
}

const KINDS: Record<string, PvKind> = {
  double: "double",
  float: "double",
  long: "long",
  short: "long",
  string: "string",
  enum: "enum",
  char: "char",
};

/** Metadata of a CTRL reading, within what our PV model accepts. */
function metaOf(r: CaReading, kind: PvKind): PvMeta {
  const m: PvMeta = {};
  if (kind === "enum") {
    if (r.enumStrings !== undefined) m.states = r.enumStrings.slice(0, 16);
    return m;
  }
  if (r.units !== undefined && r.units !== "") m.units = r.units.slice(0, 7);
  if (r.precision !== undefined && r.precision >= 0 && r.precision <= 17) m.precision = r.precision;
  if (r.displayLimits && r.displayLimits.low !== r.displayLimits.high) {
    m.displayLow = r.displayLimits.low;
    m.displayHigh = r.displayLimits.high;
  }
  const a = r.alarmLimits;
  if (a) {
    const alarm: NonNullable<PvMeta["alarm"]> = {};
    // EPICS leaves unused alarm limits at NaN (or 0/0): only finite, distinct ones mean anything.
    if (Number.isFinite(a.lolo) && a.lolo !== a.hihi) alarm.lolo = a.lolo;
    if (Number.isFinite(a.low) && a.low !== a.high) alarm.low = a.low;
    if (Number.isFinite(a.high) && a.low !== a.high) alarm.high = a.high;
    if (Number.isFinite(a.hihi) && a.lolo !== a.hihi) alarm.hihi = a.hihi;
    if (Object.keys(alarm).length > 0) m.alarm = alarm;
  }
  return m;
}

export class RemotePvs {
  private readonly watches = new Map<string, Watch>();

  constructor(private readonly client: () => RemoteCaClient) {}

  /** Calls `cb` once the remote PV `name` has connected; returns the cancel function. */
  watch(name: string, cb: (pv: Pv) => void): () => void {
    let w = this.watches.get(name);
    if (w === undefined) {
      w = this.start(name);
      this.watches.set(name, w);
    }
    const watch = w;
    if (watch.pv !== undefined && !watch.pv.removed) {
      const pv = watch.pv;
      queueMicrotask(() => cb(pv));
      return () => {};
    }
    watch.waiters.add(cb);
    return () => watch.waiters.delete(cb);
  }

  private start(name: string): Watch {
    const ca = this.client();
    const w: Watch = { pv: undefined, pending: undefined, waiters: new Set(), close: () => {} };
    const ctrl = ca.monitor(name, {
      as: "ctrl",
      mask: 8 | 1, // DBE_PROPERTY, plus the reading every monitor gets on connect
      onUpdate: (r) => this.onCtrl(name, w, r),
    });
    const time = ca.monitor(name, {
      as: "time",
      mask: 1 | 4, // DBE_VALUE | DBE_ALARM
      onUpdate: (r) => {
        if (w.pv === undefined) w.pending = r;
        else post(w.pv, r);
      },
    });
    const offConn = ca.onConnection(name, (up) => {
      // Disconnected: keep the last value, flagged INVALID/COMM as a CA client shows it.
      if (!up && w.pv !== undefined) {
        w.pv.post(w.pv.value, { severity: Severity.INVALID, status: AlarmStatus.COMM });
      }
    });
    w.close = () => {
      ctrl.close();
      time.close();
      offConn();
    };
    return w;
  }

  private onCtrl(name: string, w: Watch, r: CaReading): void {
    const kind = KINDS[r.nativeType] ?? "double";
    if (w.pv !== undefined) {
      try {
        w.pv.setMeta(metaOf(r, kind));
      } catch {
        // Metadata our model refuses (e.g. more than 16 states) keeps the previous one.
      }
      return;
    }
    const count = kind === "string" || kind === "enum" ? 1 : Math.max(1, r.count);
    const spec: PvSpec = { name, kind, count, writable: true, meta: metaOf(r, kind) };
    let pv: Pv;
    try {
      pv = new Pv(spec, async (value) => {
        await this.client().put(name, value, { wait: true, timeout: 10 });
      });
    } catch {
      pv = new Pv({ ...spec, meta: {} });
    }
    post(pv, w.pending ?? r);
    w.pending = undefined;
    w.pv = pv;
    const waiters = [...w.waiters];
    w.waiters.clear();
    for (const cb of waiters) cb(pv);
  }

  /** Closes the watches no session listens to any more. */
  sweep(): void {
    for (const [name, w] of this.watches) {
      if (w.waiters.size === 0 && (w.pv === undefined || w.pv.listenerCount === 0)) {
        w.close();
        w.pv?.dispose();
        this.watches.delete(name);
      }
    }
  }

  /** Names watched now (diagnostics and tests). */
  get names(): string[] {
    return [...this.watches.keys()];
  }

  close(): void {
    for (const w of this.watches.values()) {
      w.close();
      w.pv?.dispose();
    }
    this.watches.clear();
  }
}

function post(pv: Pv, r: CaReading): void {
  const opts: Parameters<Pv["post"]>[1] = { force: true };
  if (r.severity !== undefined) {
    opts.severity = Math.min(3, Math.max(0, r.severity)) as Severity;
    opts.status = (r.status ?? 0) as AlarmStatus;
  }
  opts.timestamp = r.stamp ?? now();
  try {
    pv.post(r.value, opts);
  } catch {
    // A value our model cannot hold (wrong type after a remote record change) is skipped.
  }
}
