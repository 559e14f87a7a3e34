/**
 * The contract between the CA server and its circuits: the counters they share, what a circuit
 * needs from its server, and the socket user data.
 */
import type { Logger } from "pino";
import type { AccessPolicy } from "../../pv/access.ts";
import type { Circuit } from "./circuit.ts";
import type { CaServerConfig } from "./config.ts";
import type { PvEntry } from "./fanout.ts";

/** Counters shared by all circuits of a server (see CaServer.stats). */
export interface CaCounters {
  /** TCP messages parsed (well-framed requests, whatever their fate). */
  requests: number;
  updatesSent: number;
  /** Monitor updates replaced by a newer value before they could be sent (slow client/EVENTS_OFF). */
  updatesCoalesced: number;
  bytesSent: number;
  circuitsDropped: number;
  /** Requests whose handler threw: a server bug (logged at error level; the circuit is dropped). */
  internalErrors: number;
}

/** Counters at zero (a server's own, or the warm-up's private ones). */
export function newCaCounters(): CaCounters {
  return {
    requests: 0,
    updatesSent: 0,
    updatesCoalesced: 0,
    bytesSent: 0,
    circuitsDropped: 0,
    internalErrors: 0,
  };
}

/** What a circuit needs from its server. */
export interface CircuitHost {
  readonly config: CaServerConfig;
  readonly logger: Logger;
  readonly counters: CaCounters;
  readonly tcpPort: number;
  /** Access security and the audit trail; null = each PV's own rights, no audit. */
  readonly access: AccessPolicy | null;
  /** The entry of the served PV named by bytes[start, end) (latin1), if any. */
  lookup(bytes: Uint8Array, start: number, end: number): PvEntry | undefined;
  /** Asks for `flush()` on this circuit at the end of the current tick. */
  scheduleFlush(c: Circuit): void;
  /** The circuit closed: forget it. */
  circuitClosed(c: Circuit): void;
}

/** Socket user data: the circuit attached at `open`. */
export interface CircuitSocketData {
  circuit: Circuit | null;
}
