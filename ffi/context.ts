/**
 * One libca context and the shim's callback pointers the client hands to libca: created with the
 * object, destroyed by teardown() once libca has shut its circuits down. The client (client.ts)
 * issues its requests through `lib` and reads libca's callbacks back through `shim`.
 */
import type { Pointer } from "bun:ffi";
import { CaError, ECA, errorFromEca } from "./errors.ts";
import { type LibCa, loadLibca, syncEpicsEnv } from "./libca.ts";
import { loadShim, type Shim } from "./shim.ts";

export class CaContext {
  readonly lib: LibCa;
  readonly shim: Shim;
  readonly eventCb: Pointer;
  readonly connCb: Pointer;
  readonly accessCb: Pointer;
  private destroyed = false;

  constructor() {
    this.lib = loadLibca();
    this.shim = loadShim();
    syncEpicsEnv();
    const st = this.lib.symbols.ca_context_create(0);
    if (st !== ECA.NORMAL) throw this.eca(st, "ca_context_create");
    this.eventCb = ptrOf(this.shim.shim_event_cb());
    this.connCb = ptrOf(this.shim.shim_conn_cb());
    this.accessCb = ptrOf(this.shim.shim_access_cb());
    this.lib.symbols.ca_add_exception_event(this.shim.shim_exception_cb(), null);
    this.lib.symbols.ca_add_fd_registration(this.shim.shim_fd_cb(), null);
  }

  /** The typed error for a libca status, with libca's own message. */
  eca(status: number, what: string): CaError {
    return errorFromEca(status, what, this.message(status));
  }

  /** libca's message text for a status code. */
  message(status: number): string {
    return String(this.lib.symbols.ca_message(status));
  }

  /**
   * Destroying a context with live circuits makes libca wait (up to 30 s per circuit) for each
   * server to close its side. When that server runs on this very thread (our own CA server on the
   * main thread) it cannot answer while we block, so we first let the event loop run until libca
   * reports no circuits left, and only then destroy.
   */
  async teardown(): Promise<void> {
    const sym = this.lib.symbols;
    const deadline = Date.now() + 5000;
    while (!this.destroyed && sym.ca_get_ioc_connection_count() > 0 && Date.now() < deadline) {
      sym.ca_pend_event(1e-12);
      this.shim.shim_reset();
      await Bun.sleep(2);
    }
    this.destroyNow();
  }

  /** Destroys the context now (idempotent). */
  destroyNow(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.lib.symbols.ca_context_destroy();
    this.shim.shim_free();
  }
}

function ptrOf(raw: Pointer | bigint | null): Pointer {
  const p = typeof raw === "bigint" ? (Number(raw) as Pointer) : raw;
  if (!p) throw new CaError("libca callback shim returned a null pointer");
  return p;
}
