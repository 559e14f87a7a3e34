/**
 * The protocol-neutral PV source: what a protocol server (Channel Access, pvAccess, PV Web Socket)
 * needs of the set of served PVs, and nothing more. It plays the role of pvxs's `Source`.
 * `PvRegistry` implements it; protocol servers depend on this interface, never on the registry
 * class, so a second protocol serves the same PVs without either knowing of the other.
 *
 * What a server does with it (docs/architecture.md, "PV source"):
 * - **look up** a name (`get`, `has`: searches and channel creation) and **enumerate** (`names`,
 *   `values`: a server indexing names its own way, e.g. CA's byte-keyed lookup table);
 * - be **told of adds and removes** (`onAdd`, `onRemove`): a removed PV is already disposed, so
 *   every channel on it must disconnect;
 * - on a found `Pv`: **read** a consistent snapshot (`state`, `meta`, `generation`), **subscribe**
 *   (`subscribe(listener)`: the listener gets the DBE bits of each update; one listener per PV
 *   per server, fanned out by the server), and **write with completion** (`beginWrite`: null when
 *   the write completed at once, else a promise of the plugin's answer; `write` is the same as a
 *   plain promise; `startWrite` tells a waiter object instead, allocating no promise). A write refused by the plugin rejects with PvWriteError, whose `reason` is
 *   fit for the operator.
 *
 * Ordering is the server's business: a server that must answer a read after a write with the
 * written value (CA does) holds that channel's later requests until the write completes.
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
