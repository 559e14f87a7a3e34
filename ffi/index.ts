/**
 * Channel Access client over libca (bun:ffi). Plugins reach it as `this.ca`; the SDK wires that
 * lazily to caClient(), so a host without libca only fails when a plugin actually uses it.
 */
import { LibcaClient } from "./client.ts";

export type {
  CaClient,
  CaForm,
  CaMonitor,
  CaReading,
  GetOptions,
  MonitorOptions,
  PutOptions,
} from "./client.ts";
export { encodePut, LibcaClient } from "./client.ts";
export { DBR, dbrSizeN, decodeDbr, EPICS_EPOCH_OFFSET } from "./dbr.ts";
export {
  CaBadTypeError,
  CaDisconnectedError,
  CaError,
  CaLibraryError,
  CaNoAccessError,
  CaTimeoutError,
  ECA,
  errorFromEca,
} from "./errors.ts";
export { LIBCA_PACKAGE, LIBCA_SONAME, libcaAvailable, libcaCandidates } from "./libca.ts";

/** DBE_* event mask bits for CaClient.monitor. */
export const DBE = { VALUE: 1, LOG: 2, ALARM: 4, PROPERTY: 8 } as const;

let instance: LibcaClient | undefined;
let previous: LibcaClient | undefined;

/**
 * Closes this thread's client if one was created (never creates one) and resolves once its libca
 * context is destroyed. For a plugin worker's stop path: it frees libca's threads and circuits,
 * which a terminated Worker would otherwise leave behind.
 */
export async function closeCaClient(): Promise<void> {
  const c = instance;
  if (c) {
    c.close();
    await c.whenClosed();
  } else if (previous) {
    await previous.whenClosed();
  }
}

/**
 * The calling thread's client (main thread or Worker each get their own libca context), created on
 * first use. Throws CaLibraryError when libca is missing. After close() the next call makes a new one.
 * EPICS_CA_* variables must be in process.env before the first call: libca reads them only when
 * the context is created.
 */
export function caClient(): LibcaClient {
  if (!instance) {
    // libca allows one context per thread: finish the previous client's teardown first.
    previous?.destroyNow();
    previous = undefined;
    const c = new LibcaClient(() => {
      if (instance === c) instance = undefined;
      previous = c;
    });
    instance = c;
  }
  return instance;
}
