/** The public API of the Channel Access client: what plugins see as `this.ca`. */
import type { CaReading } from "./dbr.ts";

/** Data form of a request: plain value, value + alarm + timestamp, or value + alarm + metadata. */
export type CaForm = "value" | "time" | "ctrl";

/** Options of CaClient.get. */
export interface GetOptions {
  /** Form of the reading (default "time"). */
  as?: CaForm;
  /** Seconds to wait for connection plus reply (default 5). */
  timeout?: number;
  /** Elements to read (default: the server's current length). */
  count?: number;
}

/** Options of CaClient.put. */
export interface PutOptions {
  /** Wait for the server to complete the write (ca_put_callback, like `caput -c`). Default false. */
  wait?: boolean;
  /** Seconds to wait for connection (and completion when `wait`) (default 5). */
  timeout?: number;
}

/** Options of CaClient.monitor. */
export interface MonitorOptions {
  /** DBE_* mask (default DBE_VALUE | DBE_ALARM = 5). */
  mask?: number;
  /** Form of each reading (default "time"). */
  as?: CaForm;
  /** Called for every update, in addition to the async iterator. */
  onUpdate?: (r: CaReading) => void;
  /** Updates kept for a slow async-iterator consumer before the oldest are dropped (default 1000). */
  queueLimit?: number;
}

/** A subscription: iterate it with `for await`, or pass onUpdate; close() ends both. */
export interface CaMonitor extends AsyncIterable<CaReading> {
  readonly name: string;
  /** Updates dropped because the iterator consumer was slower than the PV. */
  readonly dropped: number;
  close(): void;
}

/** The client API plugins see as `this.ca`. */
export interface CaClient {
  get(name: string, opts?: GetOptions): Promise<CaReading>;
  put(name: string, value: unknown, opts?: PutOptions): Promise<void>;
  monitor(name: string, opts?: MonitorOptions): CaMonitor;
  onConnection(name: string, cb: (connected: boolean) => void): () => void;
  close(): void;
}

export type { CaReading };
