/**
 * The protocol-neutral PV source: what a protocol server (Channel Access, pvAccess, PV Web Socket)
 * needs of the set of served PVs, and nothing more. It plays the role of pvxs's `Source`: look a
 * name up, enumerate, be told of adds and removes; a found PV is then subscribed to
 * (`Pv.subscribe`) and written with completion (`Pv.write`). `PvRegistry` implements it; protocol
 * servers depend on this interface, never on the registry class, so a second protocol serves the
 * same PVs without either knowing of the other.
 */
import type { Pv } from "./pv.ts";

export interface PvSource {
  /** The PV served under `name`, or undefined. */
  get(name: string): Pv | undefined;
  /** Whether `name` is served (searches answer from this). */
  has(name: string): boolean;
  /** Names of every PV served now. */
  names(): Iterable<string>;
  /** Every PV served now. */
  values(): Iterable<Pv>;
  /** Calls `cb` for each PV added from now on; returns the unsubscribe function. */
  onAdd(cb: (pv: Pv) => void): () => void;
  /** Calls `cb` for each PV removed from now on (after it is disposed); returns the unsubscribe function. */
  onRemove(cb: (pv: Pv) => void): () => void;
}
