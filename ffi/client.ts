/**
 * The Channel Access client: promise/async-iterator API over libca.
 *
 * Threading model (see docs/ca-client.md): one libca context per JavaScript thread, created with
 * preemptive callbacks disabled. libca's receive threads then deliver callbacks only while this
 * thread is inside ca_pend_event, and they go to the C shim (shim.ts), which copies them into a
 * buffer; JavaScript drains that buffer right after ca_pend_event returns. So no JavaScript ever
 * runs on a libca thread, and there are no JSCallbacks to leak.
 *
 * When to call ca_pend_event: see pump.ts (libca's wake socket read through Bun's event loop,
 * plus a slow safety timer).
 */
import type { Pointer } from "bun:ffi";
import type { CaClient, CaMonitor, GetOptions, MonitorOptions, PutOptions } from "./api.ts";
import {
  Channel,
  checkCount,
  checkForm,
  checkMonitorOptions,
  checkName,
  checkTimeout,
  Monitor,
  type Op,
} from "./channel.ts";
import { CaContext } from "./context.ts";
import { type CaReading, dbrTypeFor, decodeDbr, NATIVE_NAMES } from "./dbr.ts";
import { CaDisconnectedError, CaError, CaNoAccessError, CaTimeoutError, ECA } from "./errors.ts";
import type { LibCa } from "./libca.ts";
import { ServicePump } from "./pump.ts";
import { type Encoded, encodePut } from "./put.ts";
import { REC, readRecords, type Shim } from "./shim.ts";

export type { CaClient, CaForm, CaMonitor, GetOptions, MonitorOptions, PutOptions } from "./api.ts";
export type { CaReading };
export { encodePut };

const OP_CONN_UP = 6;
const CS_CONN = 2;

export class LibcaClient implements CaClient {
  private readonly ctx: CaContext;
  private readonly lib: LibCa;
  private readonly shim: Shim;
  private readonly channels = new Map<string, Channel>();
  private readonly byChid = new Map<number, Channel>();
  private readonly ops = new Map<number, Op>();
  private readonly monitors = new Map<number, Monitor>();
  private readonly chidOut = new BigUint64Array(1);
  private readonly evidOut = new BigUint64Array(1);
  private nextId = 1;
  private closed = false;
  private servicing = false;
  private flushQueued = false;
  private readonly pump = new ServicePump(
    () => this.service(),
    () => this.busy(),
  );
  /** Recent asynchronous libca exceptions (message: context), newest last; for diagnostics. */
  readonly exceptions: string[] = [];
  /** Records the shim dropped because JavaScript fell more than 256 MiB behind. */
  droppedRecords = 0;

  constructor(private readonly onClose?: () => void) {
    this.ctx = new CaContext();
    this.lib = this.ctx.lib;
    this.shim = this.ctx.shim;
    this.service();
  }

  private eca(status: number, what: string): CaError {
    return this.ctx.eca(status, what);
  }

  /** Whether close() was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new CaError("the CA client was closed");
  }

  /** libca version string (e.g. "4.13"). */
  version(): string {
    return String(this.lib.symbols.ca_version());
  }

  private channel(name: string): Channel {
    let ch = this.channels.get(name);
    if (ch) return ch;
    ch = new Channel(name);
    const st = this.lib.symbols.ca_create_channel(
      Buffer.from(`${name}\0`),
      this.ctx.connCb,
      null,
      0,
      this.chidOut,
    );
    if (st !== ECA.NORMAL) throw this.eca(st, `create channel ${name}`);
    ch.chid = Number(this.chidOut[0]) as Pointer;
    this.lib.symbols.ca_replace_access_rights_event(ch.chid, this.ctx.accessCb);
    this.channels.set(name, ch);
    this.byChid.set(ch.chid, ch);
    this.requestFlush();
    return ch;
  }

  /** Reads a PV (connecting first if needed); rejects with a typed CaError. */
  get(name: string, opts: GetOptions = {}): Promise<CaReading> {
    try {
      this.assertOpen();
      checkName(name);
      const form = checkForm(opts.as);
      const timeout = checkTimeout(opts.timeout);
      const count = checkCount(opts.count);
      const ch = this.channel(name);
      return new Promise<CaReading | undefined>((resolve, reject) => {
        this.newOp("get", ch, timeout, resolve, reject, (op) => {
          if (!ch.canRead) {
            this.finish(op, new CaNoAccessError(`get ${name}: read access denied`, ECA.NORDACCESS));
            return;
          }
          const st = this.lib.symbols.ca_array_get_callback(
            dbrTypeFor(ch.native, form),
            Math.min(count, ch.elementCount),
            ch.chid,
            this.ctx.eventCb,
            op.id as Pointer,
          );
          if (st !== ECA.NORMAL) this.finish(op, this.eca(st, `get ${name}`));
        });
      }) as Promise<CaReading>;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Writes a PV; with `wait` resolves only when the server reports completion. */
  put(name: string, value: unknown, opts: PutOptions = {}): Promise<void> {
    try {
      this.assertOpen();
      checkName(name);
      const timeout = checkTimeout(opts.timeout);
      const wait = opts.wait === true;
      const ch = this.channel(name);
      return new Promise<CaReading | undefined>((resolve, reject) => {
        this.newOp("put", ch, timeout, resolve, reject, (op) => {
          if (!ch.canWrite) {
            this.finish(op, new CaNoAccessError(`put ${name}: write access denied`));
            return;
          }
          let enc: Encoded;
          try {
            enc = encodePut(ch.native, ch.elementCount, value, name);
          } catch (e) {
            this.finish(op, e as Error);
            return;
          }
          const sym = this.lib.symbols;
          const st = wait
            ? sym.ca_array_put_callback(
                enc.type,
                enc.count,
                ch.chid,
                enc.data,
                this.ctx.eventCb,
                op.id as Pointer,
              )
            : sym.ca_array_put(enc.type, enc.count, ch.chid, enc.data);
          if (st !== ECA.NORMAL) this.finish(op, this.eca(st, `put ${name}`));
          else if (!wait) {
            // libca copied the value into its send buffer; flushing now makes it leave.
            sym.ca_flush_io();
            this.finish(op, undefined);
          }
        });
      }).then(() => undefined);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Subscribes to a PV; the subscription is (re)established by libca whenever it connects. */
  monitor(name: string, opts: MonitorOptions = {}): CaMonitor {
    this.assertOpen();
    checkName(name);
    const form = checkForm(opts.as);
    const { mask, limit } = checkMonitorOptions(opts);
    const ch = this.channel(name);
    const m = new Monitor(this.nextId++, ch, form, mask, opts.onUpdate, limit, (x) =>
      this.closeMonitor(x),
    );
    this.monitors.set(m.id, m);
    ch.monitors.add(m);
    if (ch.connected) this.subscribe(m);
    this.pump.kick();
    return m;
  }

  /**
   * Calls `cb` on every connection change of the PV (and once with `true` soon after registering
   * if it is already connected); returns the unsubscribe function.
   */
  onConnection(name: string, cb: (connected: boolean) => void): () => void {
    this.assertOpen();
    checkName(name);
    if (typeof cb !== "function") throw new CaError("onConnection needs a callback function");
    const ch = this.channel(name);
    ch.listeners.add(cb);
    if (ch.connected) {
      queueMicrotask(() => {
        if (ch.listeners.has(cb) && ch.connected) cb(true);
      });
    }
    this.pump.kick();
    return () => {
      ch.listeners.delete(cb);
    };
  }

  /**
   * Clears every channel and subscription, rejects outstanding operations and ends monitors at
   * once; the context itself is destroyed shortly after, once libca has shut its circuits down
   * (see teardown()). `closed` resolves when that is done.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new CaError("the CA client was closed");
    for (const op of [...this.ops.values()]) this.finish(op, err);
    for (const m of this.monitors.values()) m.end();
    this.monitors.clear();
    const sym = this.lib.symbols;
    // Clearing the channels makes libca shut each circuit down cleanly (FIN to the server).
    for (const ch of this.channels.values()) sym.ca_clear_channel(ch.chid);
    sym.ca_flush_io();
    this.channels.clear();
    this.byChid.clear();
    this.pump.stop();
    this.closedPromise = this.ctx.teardown();
    this.onClose?.();
  }

  private closedPromise: Promise<void> | undefined;

  /** Resolves once the libca context is destroyed (after close()). */
  whenClosed(): Promise<void> {
    return this.closedPromise ?? Promise.resolve();
  }

  /** Destroys the context now (called by teardown, or by caClient() needing a fresh context). */
  destroyNow(): void {
    this.ctx.destroyNow();
  }

  private newOp(
    kind: "get" | "put",
    ch: Channel,
    timeout: number,
    resolve: (r: CaReading | undefined) => void,
    reject: (e: Error) => void,
    issue: (op: Op) => void,
  ): Op {
    const op: Op = {
      id: this.nextId++,
      kind,
      ch,
      issued: false,
      timer: undefined,
      resolve,
      reject,
      issue,
    };
    this.ops.set(op.id, op);
    op.timer = setTimeout(() => {
      const what = `${kind} ${ch.name}`;
      this.finish(
        op,
        op.issued
          ? new CaTimeoutError(`${what}: no reply within ${timeout} s`)
          : new CaTimeoutError(
              `${what}: not connected within ${timeout} s (PV not found or server unreachable)`,
            ),
      );
      if (!op.issued) this.dropIfUnused(ch);
    }, timeout * 1000);
    if (ch.connected) this.issue(op);
    else ch.waiting.add(op);
    this.pump.kick();
    return op;
  }

  /**
   * Forgets a channel that never connected and nobody uses any more (a typo'd or absent PV after
   * its get/put timed out), so libca stops searching for it forever.
   */
  private dropIfUnused(ch: Channel): void {
    if (this.closed || ch.everConnected || ch.waiting.size > 0) return;
    if (ch.monitors.size > 0 || ch.listeners.size > 0) return;
    for (const op of this.ops.values()) if (op.ch === ch) return;
    this.lib.symbols.ca_clear_channel(ch.chid);
    this.channels.delete(ch.name);
    this.byChid.delete(ch.chid);
    this.requestFlush();
  }

  /** Channels currently cached (for diagnostics and tests). */
  get channelCount(): number {
    return this.channels.size;
  }

  private issue(op: Op): void {
    op.issued = true;
    op.issue(op);
    this.requestFlush();
  }

  private finish(op: Op, result: CaReading | Error | undefined): void {
    if (!this.ops.delete(op.id)) return;
    if (op.timer) clearTimeout(op.timer);
    op.ch.waiting.delete(op);
    if (result instanceof Error) op.reject(result);
    else op.resolve(result);
  }

  private subscribe(m: Monitor): void {
    if (m.evid !== 0 || m.closed) return;
    const type = dbrTypeFor(m.ch.native, m.form);
    const st = this.lib.symbols.ca_create_subscription(
      type,
      0,
      m.ch.chid,
      m.mask,
      this.ctx.eventCb,
      m.id as Pointer,
      this.evidOut,
    );
    if (st !== ECA.NORMAL) {
      this.exceptions.push(`subscribe ${m.name}: ${this.ctx.message(st)}`);
      return;
    }
    m.evid = Number(this.evidOut[0]) as Pointer;
    this.requestFlush();
  }

  private closeMonitor(m: Monitor): void {
    this.monitors.delete(m.id);
    m.ch.monitors.delete(m);
    if (m.evid !== 0 && !this.closed) {
      this.lib.symbols.ca_clear_subscription(m.evid);
      m.evid = 0 as Pointer;
      this.requestFlush();
    }
  }

  private requestFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (!this.closed) this.lib.symbols.ca_flush_io();
    });
  }

  /** Work that needs callbacks delivered promptly. */
  private busy(): boolean {
    if (this.ops.size > 0 || this.monitors.size > 0) return true;
    for (const ch of this.channels.values()) if (ch.listeners.size > 0) return true;
    return false;
  }

  /** Lets libca deliver pending callbacks into the shim, then dispatches them. */
  service(): void {
    if (this.closed || this.servicing) return;
    this.servicing = true;
    try {
      this.lib.symbols.ca_pend_event(1e-12);
      if (!this.pump.hasWakeFd) this.pump.adopt(this.shim.shim_wakefd());
      this.drain();
    } finally {
      this.servicing = false;
    }
  }

  private drain(): void {
    const dropped = Number(this.shim.shim_take_dropped());
    if (dropped > 0) this.droppedRecords += dropped;
    const actions: Array<() => void> = [];
    readRecords(this.shim, (r) => {
      if (r.kind === REC.EVENT) {
        const a = this.onEvent(r.usr, r.status, r.type, r.count, r.data);
        if (a) actions.push(a);
      } else if (r.kind === REC.CONN) {
        const ch = this.byChid.get(r.chid);
        const up = r.type === OP_CONN_UP;
        if (ch) actions.push(() => this.onConn(ch, up));
      } else if (r.kind === REC.ACCESS) {
        const ch = this.byChid.get(r.chid);
        if (ch) {
          ch.canRead = (r.type & 1) !== 0;
          ch.canWrite = (r.type & 2) !== 0;
        }
      } else if (r.kind === REC.EXCEPTION) {
        const ctx = new TextDecoder().decode(r.data);
        this.exceptions.push(`${this.ctx.message(r.status)}: ${ctx}`);
        if (this.exceptions.length > 50) this.exceptions.shift();
      }
    });
    // Everything needed was copied out; user code may now call back into the client.
    this.shim.shim_reset();
    for (const a of actions) {
      try {
        a();
      } catch {
        // One failing consumer must not stop the rest of this batch.
      }
    }
  }

  private onEvent(
    usr: number,
    status: number,
    type: number,
    count: number,
    data: Uint8Array,
  ): (() => void) | undefined {
    const op = this.ops.get(usr);
    if (op) {
      if (status !== ECA.NORMAL) {
        const err = this.eca(status, `${op.kind} ${op.ch.name}`);
        return () => this.finish(op, err);
      }
      if (op.kind === "put") return () => this.finish(op, undefined);
      const r = decodeDbr(type, count, data, op.ch.elementCount > 1);
      return () => this.finish(op, r);
    }
    const m = this.monitors.get(usr);
    if (m && status === ECA.NORMAL && data.length > 0) {
      const r = decodeDbr(type, count, data, m.ch.elementCount > 1);
      return () => m.deliver(r);
    }
    return undefined;
  }

  private onConn(ch: Channel, up: boolean): void {
    if (this.closed) return;
    const sym = this.lib.symbols;
    // Several records may be queued; trust the channel's state now, not the record's.
    const now = up && sym.ca_state(ch.chid) === CS_CONN;
    if (now) {
      ch.native = sym.ca_field_type(ch.chid);
      ch.elementCount = Number(sym.ca_element_count(ch.chid));
      ch.canRead = sym.ca_read_access(ch.chid) !== 0;
      ch.canWrite = sym.ca_write_access(ch.chid) !== 0;
    }
    if (now === ch.connected) return;
    ch.connected = now;
    if (now) ch.everConnected = true;
    if (now) {
      for (const op of [...ch.waiting]) {
        ch.waiting.delete(op);
        this.issue(op);
      }
      for (const m of ch.monitors) this.subscribe(m);
    } else {
      for (const op of [...this.ops.values()]) {
        if (op.ch === ch && op.issued) {
          this.finish(op, new CaDisconnectedError(`${op.kind} ${ch.name}: channel disconnected`));
        }
      }
    }
    for (const l of [...ch.listeners]) {
      try {
        l(now);
      } catch {
        // Listener errors are the listener's business.
      }
    }
  }

  /** Native type name of a connected channel (for diagnostics and tests). */
  nativeType(name: string): string | undefined {
    const ch = this.channels.get(name);
    return ch?.connected ? NATIVE_NAMES[ch.native] : undefined;
  }
}
