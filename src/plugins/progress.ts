/**
 * Live progress of adds in flight, keyed by plugin name (case-insensitive, as plugin names are):
 * the controller feeds it each pipeline step as the step is recorded and the report at the end;
 * the console's `GET /api/v1/plugins/{name}/progress` streams it (Server-Sent Events).
 *
 * A subscriber may come before the add begins (the console opens the stream, then posts the add)
 * and hears the next add of that name; one that comes while an add runs first gets the steps
 * recorded so far. Nothing is kept after the end: the add's own answer carries the full report.
 */
import type { ValidationReport, ValidationStep } from "./types.ts";

/** One event of an add: a step done, or the end with the pipeline's report. */
export type ProgressEvent =
  | { type: "step"; step: string; ok: boolean; message: string }
  | { type: "done"; ok: boolean; message: string; failedStep?: string };

type Listener = (e: ProgressEvent) => void;

/** Bounds what a hostile caller can make us keep: the pipeline has about ten steps. */
const MAX_EVENTS = 64;

export class AddProgress {
  /** Events so far of each add in flight, by lower-case name. */
  private readonly entries = new Map<string, ProgressEvent[]>();
  private readonly listeners = new Map<string, Set<Listener>>();

  /** An add of `name` starts. */
  begin(name: string): void {
    this.entries.set(name.toLowerCase(), []);
  }

  /** A step of the add of `name` was recorded. */
  step(name: string, s: ValidationStep): void {
    this.emit(name, { type: "step", step: s.step, ok: s.ok, message: s.message });
  }

  /** The add of `name` ended with `report` (the steps were already told). */
  end(name: string, report: ValidationReport): void {
    this.emit(name, {
      type: "done",
      ok: report.ok,
      message: report.message,
      ...(report.failedStep !== undefined ? { failedStep: report.failedStep } : {}),
    });
    this.entries.delete(name.toLowerCase());
  }

  /** True while an add of `name` runs. */
  running(name: string): boolean {
    return this.entries.has(name.toLowerCase());
  }

  /** Events so far of the add of `name` in flight (none when no add runs). */
  events(name: string): readonly ProgressEvent[] {
    return this.entries.get(name.toLowerCase()) ?? [];
  }

  /**
   * Calls `fn` with the events so far of the add in flight, then with each new one (of this and
   * later adds of `name`). Returns the unsubscribe function.
   */
  subscribe(name: string, fn: Listener): () => void {
    const key = name.toLowerCase();
    for (const e of this.events(key)) fn(e);
    let set = this.listeners.get(key);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(fn);
    return () => {
      const s = this.listeners.get(key);
      s?.delete(fn);
      if (s?.size === 0) this.listeners.delete(key);
    };
  }

  private emit(name: string, ev: ProgressEvent): void {
    const key = name.toLowerCase();
    const e = this.entries.get(key);
    if (e !== undefined && e.length < MAX_EVENTS) e.push(ev);
    for (const fn of this.listeners.get(key) ?? []) {
      try {
        fn(ev);
      } catch {
        // A broken subscriber (a closed stream) must not stop the add.
      }
    }
  }
}
