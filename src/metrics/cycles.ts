/**
 * Cycle timing of plugins, observed from their default PVs (no hook in the plugin runtime):
 *
 * - a continuous task bumps `CYCLE_COUNT` once per cycle; the time between two bumps is its
 *   period, and what the period exceeds the configured `interval` by is the cycle's lateness
 *   (the loop is fixed-rate without overlap, so a cycle longer than `interval` shows here);
 * - a triggered task's `RUN` goes to 1 when a trigger is accepted and back to 0 when execute()
 *   returned: that span is the cycle's duration.
 */
import type { TaskMode } from "../common/names.ts";
import type { Pv } from "../pv/pv.ts";
import type { PvSource } from "../pv/source.ts";

export interface CycleSink {
  /** A continuous task finished a cycle `periodSec` after the previous one. */
  period(plugin: string, periodSec: number, latenessSec: number): void;
  /** A triggered task's execute() took `durationSec`. */
  duration(plugin: string, durationSec: number): void;
}

/** What the observer needs to know of a plugin, found by its PV prefix. */
export interface CyclePlugin {
  name: string;
  mode?: TaskMode;
  /** Seconds between cycles of a continuous task. */
  interval: number;
}

export class CycleObserver {
  private readonly offs = new Set<() => void>();

  constructor(
    source: PvSource,
    /** The plugin whose PVs start with `prefix:` (undefined: not a plugin's). */
    private readonly pluginOf: (prefix: string) => CyclePlugin | undefined,
    private readonly sink: CycleSink,
  ) {
    for (const pv of source.values()) this.watch(pv);
    this.offs.add(source.onAdd((pv) => this.watch(pv)));
  }

  private watch(pv: Pv): void {
    const m = /^(.*):(CYCLE_COUNT|RUN)$/.exec(pv.name);
    if (m === null) return;
    const prefix = m[1] ?? "";
    let last = Number.NaN;
    const off = pv.subscribe(() => {
      const now = performance.now();
      const p = this.pluginOf(prefix);
      if (p === undefined) return;
      if (m[2] === "CYCLE_COUNT") {
        if (p.mode === "continuous" && !Number.isNaN(last)) {
          const period = (now - last) / 1000;
          this.sink.period(p.name, period, Math.max(0, period - p.interval));
        }
        last = now;
      } else if (pv.value === 1) {
        last = now;
      } else if (!Number.isNaN(last)) {
        this.sink.duration(p.name, (now - last) / 1000);
        last = Number.NaN;
      }
    });
    let offRemove = (): void => {};
    const detach = () => {
      off();
      offRemove();
      this.offs.delete(detach);
    };
    offRemove = pv.onRemove(detach);
    this.offs.add(detach);
  }

  stop(): void {
    for (const off of [...this.offs]) off();
    this.offs.clear();
  }
}
