/**
 * Messages between the PVA server (main thread) and its search thread (pva-search-worker.ts), and
 * the layout of the counters they share. Types and constants only, so both sides import it freely.
 * Same design as the CA server's search thread (docs/pva.md §Search thread); the name mirror and
 * the replies are shared with it (src/common/name-mirror.ts, src/common/search-thread-host.ts).
 */
import type { NameMirrorInit } from "../../common/name-mirror.ts";

/** Slots of the shared Float64Array of UDP counters (written by the search thread only). */
export {
  BAD_DATAGRAMS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
} from "../../common/search-thread-host.ts";
export const BEACONS_SENT = 3;
export const SEARCH_COUNTER_SLOTS = 4;

/** Main thread → search thread. */
export type ToSearchThread =
  | (NameMirrorInit & {
      t: "init";
      guid: Uint8Array;
      ignoreAddrs: string[];
      /** SharedArrayBuffer behind the counters (SEARCH_COUNTER_SLOTS doubles). */
      counters: SharedArrayBuffer;
    })
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
