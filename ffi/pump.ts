/**
 * When the client calls ca_pend_event. libca's file-descriptor registration gives us a UDP socket
 * its threads write one datagram to when callbacks wait; we read a duplicate of it through Bun's
 * event loop and service the context on every datagram. A slow safety timer covers anything
 * missed, and stops holding the process once the client has been idle for a while.
 */
import { nonblockingDup } from "./libca.ts";

const SAFETY_POLL_MS = 100;
const IDLE_STOP_MS = 2000;

export class ServicePump {
  private wakeFd = -1;
  private reader: ReturnType<ReadableStream<Uint8Array<ArrayBuffer>>["getReader"]> | undefined;
  private safety: ReturnType<typeof setInterval> | undefined;
  private idleSince = 0;
  private stopped = false;

  constructor(
    /** Lets libca deliver pending callbacks and dispatches them. */
    private readonly service: () => void,
    /** Whether work waits for callbacks (operations, monitors, connection listeners). */
    private readonly busy: () => boolean,
  ) {}

  /** Whether the wake socket is known yet. */
  get hasWakeFd(): boolean {
    return this.wakeFd >= 0;
  }

  /** Makes sure the context is serviced while there is work. */
  kick(): void {
    if (this.stopped) return;
    this.idleSince = 0;
    this.startWake();
    if (!this.safety) {
      this.safety = setInterval(() => this.safetyTick(), SAFETY_POLL_MS);
    }
    this.safety.ref();
  }

  /** The client closed: no more servicing. */
  stop(): void {
    this.stopped = true;
    this.stopWake();
    if (this.safety) clearInterval(this.safety);
    this.safety = undefined;
  }

  /** Takes libca's wake socket once the shim has seen it registered (`fd` ≥ 0). */
  adopt(fd: number): void {
    if (fd < 0 || this.wakeFd >= 0) return;
    // Non-blocking so neither Bun's reads nor libca's drain of this socket can ever block.
    // Bun reads a duplicate: when libca closes its descriptor at context destruction, the number
    // may be reused at once, and a reader Bun has not fully torn down must never touch that new
    // file. The duplicate (one per client) is left to the process; closing it ourselves could race
    // with Bun's own cleanup of the stream.
    const dupFd = nonblockingDup(fd);
    if (dupFd < 0) return;
    this.wakeFd = dupFd;
    if (this.busy()) this.startWake();
  }

  private safetyTick(): void {
    this.service();
    if (this.busy()) {
      this.idleSince = 0;
      return;
    }
    const now = Date.now();
    if (this.idleSince === 0) this.idleSince = now;
    else if (now - this.idleSince >= IDLE_STOP_MS) {
      // Idle: let the process exit if nothing else holds it, but keep servicing the context so
      // libca's threads never sit blocked on the callback lock (echoes, reconnects of cached
      // channels) while nobody waits for a callback.
      this.stopWake();
      this.safety?.unref();
    }
  }

  private startWake(): void {
    if (this.reader || this.wakeFd < 0) return;
    const reader = Bun.file(this.wakeFd).stream().getReader();
    this.reader = reader;
    const loop = async () => {
      try {
        while (this.reader === reader) {
          const { done } = await reader.read();
          if (done || this.reader !== reader) break;
          this.service();
        }
      } catch {
        // The safety timer keeps servicing; the reader is restarted by the next kick().
      }
      if (this.reader === reader) this.reader = undefined;
    };
    void loop();
  }

  private stopWake(): void {
    const r = this.reader;
    this.reader = undefined;
    if (r) void r.cancel().catch(() => {});
  }
}
