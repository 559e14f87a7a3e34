/**
 * Messages between the CA server (main thread) and its search thread (search-worker.ts), and the
 * layout of the counters they share. Types and constants only, so both sides import it freely.
 */

/** Slots of the shared Float64Array of search counters (written by the search thread only). */
export const SEARCH_DATAGRAMS = 0;
export const SEARCH_REPLIES = 1;
export const BAD_DATAGRAMS = 2;
export const REPLIES_DROPPED = 3;
export const SEARCH_COUNTER_SLOTS = 4;

/** Main thread → search thread. */
export type ToSearchThread =
  | {
      t: "init";
      /** Every served name at the time of the snapshot; later changes come on `names`. */
      snapshot: string[];
      ignoreAddrs: string[];
      maxNameLength: number;
      /** SharedArrayBuffer behind the counters (SEARCH_COUNTER_SLOTS doubles). */
      counters: SharedArrayBuffer;
      /**
       * Port carrying registry changes ({@link NameOps}). The thread reads it synchronously
       * (receiveMessageOnPort) before answering a datagram whenever `opsPosted` says a batch is
       * waiting, so a search sent after `registry.add()` returned is always answered.
       */
      names: MessagePort;
      /** SharedArrayBuffer of one Int32: batches posted on `names` so far. */
      opsPosted: SharedArrayBuffer;
    }
  | {
      t: "bind";
      addrs: string[];
      port: number;
      mcastGroups: string[];
      /** TCP port to advertise; 0 = not known yet (searches are not answered until it is). */
      tcpPort: number;
    }
  | { t: "tcpPort"; port: number }
  | { t: "close" };

/** A batch of registry changes, in order: "+NAME" served from now on, "-NAME" no longer served. */
export type NameOps = string[];

/** Search thread → main thread. */
export type FromSearchThread =
  | { t: "bound"; udpPort: number }
  | { t: "bindError"; message: string }
  | { t: "closed" }
  | { t: "log"; level: "debug" | "warn" | "error"; msg: string; detail?: Record<string, string> };
