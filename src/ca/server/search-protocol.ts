/**
 * Messages between the CA server (main thread) and its search thread (search-worker.ts), and the
 * layout of the counters they share. Types and constants only, so both sides import it freely.
 * The name mirror and the replies are the same as PVA's (src/common/name-mirror.ts,
 * src/common/search-thread-host.ts).
 */
import type { NameMirrorInit } from "../../common/name-mirror.ts";

/** Slots of the shared Float64Array of search counters (written by the search thread only). */
export {
  BAD_DATAGRAMS,
  SEARCH_DATAGRAMS,
  SEARCH_REPLIES,
} from "../../common/search-thread-host.ts";
export const REPLIES_DROPPED = 3;
export const SEARCH_COUNTER_SLOTS = 4;

/** Main thread → search thread. */
export type ToSearchThread =
  | (NameMirrorInit & {
      t: "init";
      ignoreAddrs: string[];
      maxNameLength: number;
      /** SharedArrayBuffer behind the counters (SEARCH_COUNTER_SLOTS doubles). */
      counters: SharedArrayBuffer;
      /** SCHED_FIFO priority for this thread (0: ordinary), as the server's main thread. */
      realtimePriority: number;
    })
  | {
      t: "bind";
      addrs: string[];
      port: number;
      mcastGroups: string[];
      /** TCP port to advertise; 0 = not known yet (searches are not answered until it is). */
      tcpPort: number;
    }
  | { t: "tcpPort"; port: number }
  /** Run the search path on synthetic datagrams (search-warmup.ts); no answer, a debug log. */
  | { t: "warmup"; datagrams: number }
  | { t: "close" };
