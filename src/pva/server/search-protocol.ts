/**
 * Messages between the PVA server (main thread) and its search thread (pva-search-worker.ts), and
 * the layout of the counters they share. Types and constants only, so both sides import it freely.
 * Same design as the CA server's search thread (docs/pva.md §Search thread), written for PVA.
 */

/** Slots of the shared Float64Array of UDP counters (written by the search thread only). */
export const SEARCH_DATAGRAMS = 0;
export const SEARCH_REPLIES = 1;
export const BAD_DATAGRAMS = 2;
export const BEACONS_SENT = 3;
export const SEARCH_COUNTER_SLOTS = 4;

/** Main thread → search thread. */
export type ToSearchThread =
  | {
      t: "init";
      /** Served names at the snapshot (a name both a PV and an RPC appears twice: counted). */
      snapshot: string[];
      guid: Uint8Array;
      ignoreAddrs: string[];
      /** SharedArrayBuffer behind the counters (SEARCH_COUNTER_SLOTS doubles). */
      counters: SharedArrayBuffer;
      /**
       * Port carrying name changes ({@link NameOps}); read synchronously before a datagram is
       * answered whenever `opsPosted` says a batch is waiting, so a search sent after
       * `registry.add()` (or `rpc.register()`) returned is always answered.
       */
      names: MessagePort;
      /** SharedArrayBuffer of one Int32: batches posted on `names` so far. */
      opsPosted: SharedArrayBuffer;
    }
  | {
      t: "bind";
      addrs: string[];
      port: number;
      /** TCP port advertised in replies and beacons. */
      tcpPort: number;
      /** Beacon destinations (resolved by the main thread) and period in seconds. */
      beaconDests: Array<{ address: string; port: number }>;
      beaconPeriod: number;
    }
  | { t: "close" };

/** A batch of name changes, in order: "+NAME" one more server of the name, "-NAME" one fewer. */
export type NameOps = string[];

/** Search thread → main thread. */
export type FromSearchThread =
  | { t: "bound"; udpPort: number }
  | { t: "bindError"; message: string }
  | { t: "closed" }
  | { t: "log"; level: "debug" | "warn" | "error"; msg: string; detail?: Record<string, string> };
