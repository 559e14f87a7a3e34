import { Pv, PvSpecError } from "./pv.ts";
import type { PvSource } from "./source.ts";
import type { PvSpec, WriteHandler } from "./types.ts";

/** The set of PVs served, changeable at runtime. Protocol servers watch it through onAdd/onRemove. */
export class PvRegistry implements PvSource {
  private readonly pvs = new Map<string, Pv>();
  private readonly addListeners = new Set<(pv: Pv) => void>();
  private readonly removeListeners = new Set<(pv: Pv) => void>();

  /** Creates and registers a PV; throws PvSpecError for a bad spec or a name already served. */
  add(spec: PvSpec, handler?: WriteHandler): Pv {
    if (this.pvs.has(spec.name)) throw new PvSpecError(`PV ${spec.name} already exists`);
    const pv = new Pv(spec, handler);
    this.pvs.set(pv.name, pv);
    for (const l of this.addListeners) l(pv);
    return pv;
  }

  /** Removes a PV: its holders (e.g. CA channels) are told and must disconnect. */
  remove(name: string): boolean {
    const pv = this.pvs.get(name);
    if (!pv) return false;
    this.pvs.delete(name);
    pv.dispose();
    for (const l of this.removeListeners) l(pv);
    return true;
  }

  get(name: string): Pv | undefined {
    return this.pvs.get(name);
  }

  has(name: string): boolean {
    return this.pvs.has(name);
  }

  get size(): number {
    return this.pvs.size;
  }

  /** All PV names currently served. */
  names(): IterableIterator<string> {
    return this.pvs.keys();
  }

  values(): IterableIterator<Pv> {
    return this.pvs.values();
  }

  /** Calls `cb` for each PV added from now on; returns the unsubscribe function. */
  onAdd(cb: (pv: Pv) => void): () => void {
    this.addListeners.add(cb);
    return () => this.addListeners.delete(cb);
  }

  /** Calls `cb` for each PV removed from now on; returns the unsubscribe function. */
  onRemove(cb: (pv: Pv) => void): () => void {
    this.removeListeners.add(cb);
    return () => this.removeListeners.delete(cb);
  }
}
