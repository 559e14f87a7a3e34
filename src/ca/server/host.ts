/**
 * The contract between the CA server and its circuits: the counters they share, what a circuit
 * needs from its server, and the socket user data.
 */
import type { Logger } from "pino";
import type { AccessPolicy } from "../../pv/access.ts";
import type { Circuit } from "./circuit.ts";
import type { CaServerConfig } from "./config.ts";
import type { PvEntry } from "./fanout.ts";
import type { FlushScheduler } from "./flush.ts";
import type { NameIndex } from "./names.ts";

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

/**
 * The one implementation of CircuitHost, for the server's circuits and for the warm-up's alike
 * (warmup.ts), each with its own counters, names and flushes. One class, so that the code JSC
 * compiles while the warm-up runs sees the objects real circuits see: with a host class of its
 * own, the optimised code of the storm paths (CREATE_CHAN and the name lookup first) guarded on
 * the warm-up's host and was thrown away at the first real request, then recompiled during the
 * next storms (docs/ca-server.md, "Warm-up at boot").
 */
export class CircuitHub implements CircuitHost {
  /** The TCP port circuits connect to (set once the server listens). */
  tcpPort = 0;

  constructor(
    readonly config: CaServerConfig,
    readonly logger: Logger,
    readonly counters: CaCounters,
    readonly access: AccessPolicy | null,
    private readonly names: NameIndex<PvEntry>,
    private readonly flusher: FlushScheduler<Circuit>,
    private readonly closed: (c: Circuit) => void,
  ) {}

  lookup(bytes: Uint8Array, start: number, end: number): PvEntry | undefined {
    return this.names.get(bytes, start, end);
  }

  scheduleFlush(c: Circuit): void {
    this.flusher.schedule(c);
  }

  circuitClosed(c: Circuit): void {
    this.closed(c);
  }
}

/** Socket user data: the circuit attached at `open`. */
export interface CircuitSocketData {
  circuit: Circuit | null;
}
