/**
 * The Channel Access client: promise/async-iterator API over libca.
 *
 * Threading model (see docs/ca-client.md): one libca context per JavaScript thread, created with
 * preemptive callbacks disabled. libca's receive threads then deliver callbacks only while this
 * thread is inside ca_pend_event, and they go to the C shim (shim.ts), which copies them into a
 * buffer; JavaScript drains that buffer right after ca_pend_event returns. So no JavaScript ever
 * runs on a libca thread, and there are no JSCallbacks to leak.
 *
 * When to call ca_pend_event: libca's file-descriptor registration gives us a UDP socket that its
 * threads write one datagram to when they have callbacks waiting. We read that socket through
 * Bun's event loop (a dup of it, so libca closing its copy never leaves us polling a reused fd)
 * and service the context on every datagram. A slow safety timer covers anything missed.
 */
import { type Pointer, toArrayBuffer } from "bun:ffi";
import { type CaReading, DBR, dbrTypeFor, decodeDbr, NATIVE_NAMES } from "./dbr.ts";
import {
  CaBadTypeError,
  CaDisconnectedError,
  CaError,
  CaNoAccessError,
  CaTimeoutError,
  ECA,
  errorFromEca,
} from "./errors.ts";
import { type LibCa, loadLibca, nonblockingDup, syncEpicsEnv } from "./libca.ts";
import { loadShim, REC, REC_HEADER, type Shim } from "./shim.ts";

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

const DEFAULT_TIMEOUT_S = 5;
const MAX_TIMEOUT_S = 24 * 3600;
const SAFETY_POLL_MS = 100;
const IDLE_STOP_MS = 2000;
const OP_CONN_UP = 6;
const CS_CONN = 2;
const MAX_NAME_BYTES = 1007;
const NAME_RE = /^[\x21-\x7e]+$/;
const encoder = new TextEncoder();

interface Op {
  id: number;
  kind: "get" | "put";
  ch: Channel;
  issued: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (r: CaReading | undefined) => void;
  reject: (e: Error) => void;
  issue: (op: Op) => void;
}

class Channel {
  chid = 0 as Pointer;
  connected = false;
  everConnected = false;
  native = -1;
  elementCount = 0;
  canRead = false;
  canWrite = false;
  /** Operations waiting for the connection. */
  readonly waiting = new Set<Op>();
  readonly listeners = new Set<(connected: boolean) => void>();
  readonly monitors = new Set<Monitor>();
  constructor(readonly name: string) {}
}

class Monitor implements CaMonitor {
  evid = 0 as Pointer;
  dropped = 0;
  closed = false;
  private readonly queue: CaReading[] = [];
  private readonly waiters: Array<(r: IteratorResult<CaReading>) => void> = [];
  constructor(
    readonly id: number,
    readonly ch: Channel,
    readonly form: CaForm,
    readonly mask: number,
    private readonly onUpdate: ((r: CaReading) => void) | undefined,
    private readonly queueLimit: number,
    private readonly closer: (m: Monitor) => void,
  ) {}

  get name(): string {
    return this.ch.name;
  }

  deliver(r: CaReading): void {
    if (this.closed) return;
    if (this.onUpdate) {
      try {
        this.onUpdate(r);
      } catch {
        // A throwing consumer must not break delivery to the other monitors of this drain.
      }
    }
    const w = this.waiters.shift();
    if (w) w({ value: r, done: false });
    else if (this.onUpdate === undefined || this.iterated) {
      this.queue.push(r);
      if (this.queue.length > this.queueLimit) {
        this.queue.shift();
        this.dropped++;
      }
    }
  }

  private iterated = false;

  end(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }

  close(): void {
    if (this.closed) return;
    this.closer(this);
    this.end();
  }

  [Symbol.asyncIterator](): AsyncIterator<CaReading> {
    this.iterated = true;
    return {
      next: () => {
        const r = this.queue.shift();
        if (r) return Promise.resolve({ value: r, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

function checkName(name: unknown): string {
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new CaError(
      `invalid PV name ${JSON.stringify(name)}: printable ASCII without spaces expected`,
    );
  }
  if (name.length > MAX_NAME_BYTES) {
    throw new CaError(`PV name too long (${name.length} > ${MAX_NAME_BYTES} bytes)`);
  }
  return name;
}

function checkTimeout(t: unknown): number {
  if (t === undefined) return DEFAULT_TIMEOUT_S;
  if (typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > MAX_TIMEOUT_S) {
    throw new CaError(`timeout must be a number of seconds in (0, ${MAX_TIMEOUT_S}], got ${t}`);
  }
  return t;
}

function checkForm(f: unknown): CaForm {
  if (f === undefined) return "time";
  if (f === "value" || f === "time" || f === "ctrl") return f;
  throw new CaError(`"as" must be "value", "time" or "ctrl", got ${JSON.stringify(f)}`);
}

/** A value to put, encoded for the wire: DBR type, element count and host-order bytes. */
interface Encoded {
  type: number;
  count: number;
  data: Uint8Array;
}

// Stricter than the PV model's toNumber (src/pv/pv.ts) on purpose: the server must read "" as 0
// like rsrv, but a client putting "" almost always holds a typo, so it is refused before sending.
function toNumber(v: unknown, name: string): number {
  if (typeof v === "number") return v;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "string") {
    const t = v.trim();
    const n = t === "" ? Number.NaN : Number(t);
    if (!Number.isNaN(n) || t.toLowerCase() === "nan") return n;
  }
  const shown =
    typeof v === "string" ? JSON.stringify(v.slice(0, 40)) : v === null ? "null" : typeof v;
  throw new CaBadTypeError(`put ${name}: expected a number, got ${shown}`);
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

/**
 * Encodes `value` for a channel of native type `native` holding at most `max` elements: numbers
 * go as DBR_DOUBLE (float/double) or DBR_LONG (short/long), enum as an index or a state name,
 * char arrays take a string (UTF-8 plus NUL, the EPICS long-string idiom). Throws CaBadTypeError
 * before anything is sent when the value does not fit.
 */
export function encodePut(native: number, max: number, value: unknown, name: string): Encoded {
  const tooMany = (n: number) =>
    new CaBadTypeError(`put ${name}: ${n} elements but the channel holds at most ${max}`);
  if (native === DBR.STRING) {
    const items = isArrayLike(value) ? Array.from(value) : [value];
    if (items.length > max) throw tooMany(items.length);
    const data = new Uint8Array(40 * Math.max(items.length, 1));
    items.forEach((it, i) => {
      if ((typeof it === "object" && it !== null) || typeof it === "function") {
        throw new CaBadTypeError(`put ${name}: expected a string, got ${typeof it}`);
      }
      data.set(encoder.encode(String(it)).subarray(0, 39), i * 40);
    });
    return { type: DBR.STRING, count: Math.max(items.length, 1), data };
  }
  if (native === DBR.ENUM && typeof value === "string" && Number.isNaN(Number(value))) {
    // A state name: the server maps it to its index (like `caput pv Open`).
    const b = encoder.encode(value);
    if (b.length > 39) {
      throw new CaBadTypeError(`put ${name}: enum state name longer than 39 bytes`);
    }
    const data = new Uint8Array(40);
    data.set(b);
    return { type: DBR.STRING, count: 1, data };
  }
  if (native === DBR.CHAR && typeof value === "string") {
    const b = encoder.encode(value);
    if (b.length > max) throw tooMany(b.length);
    // Append the NUL when it fits, like caput -S.
    const n = Math.min(b.length + 1, max);
    const data = new Uint8Array(n);
    data.set(b.subarray(0, Math.min(b.length, n)));
    return { type: DBR.CHAR, count: n, data };
  }
  const items: ArrayLike<unknown> = isArrayLike(value) ? value : [value];
  if (items.length > max) throw tooMany(items.length);
  if (items.length === 0) throw new CaBadTypeError(`put ${name}: empty array`);
  const n = items.length;
  if (native === DBR.FLOAT || native === DBR.DOUBLE) {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = toNumber(items[i], name);
    return { type: DBR.DOUBLE, count: n, data: new Uint8Array(out.buffer) };
  }
  if (native === DBR.ENUM) {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const x = toNumber(items[i], name);
      if (!Number.isInteger(x) || x < 0 || x > 0xffff) {
        throw new CaBadTypeError(`put ${name}: enum index must be an integer 0..65535, got ${x}`);
      }
      out[i] = x;
    }
    return { type: DBR.ENUM, count: n, data: new Uint8Array(out.buffer) };
  }
  const finite = (i: number) => {
    const x = toNumber(items[i], name);
    if (!Number.isFinite(x)) throw new CaBadTypeError(`put ${name}: ${x} is not a finite number`);
    return x;
  };
  if (native === DBR.CHAR) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = finite(i);
    return { type: DBR.CHAR, count: n, data: out };
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = finite(i);
  return { type: DBR.LONG, count: n, data: new Uint8Array(out.buffer) };
}

/** One libca context bound to the calling thread. Create it through caClient(). */
export class LibcaClient implements CaClient {
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
  private wakeFd = -1;
  private reader: ReturnType<ReadableStream<Uint8Array<ArrayBuffer>>["getReader"]> | undefined;
  private safety: ReturnType<typeof setInterval> | undefined;
  private idleSince = 0;
  private readonly eventCb: Pointer;
  private readonly connCb: Pointer;
  private readonly accessCb: Pointer;
  /** Recent asynchronous libca exceptions (message: context), newest last; for diagnostics. */
  readonly exceptions: string[] = [];
  /** Records the shim dropped because JavaScript fell more than 256 MiB behind. */
  droppedRecords = 0;

  constructor(private readonly onClose?: () => void) {
    this.lib = loadLibca();
    this.shim = loadShim();
    syncEpicsEnv();
    const st = this.lib.symbols.ca_context_create(0);
    if (st !== ECA.NORMAL) throw this.eca(st, "ca_context_create");
    this.eventCb = this.ptrOf(this.shim.shim_event_cb());
    this.connCb = this.ptrOf(this.shim.shim_conn_cb());
    this.accessCb = this.ptrOf(this.shim.shim_access_cb());
    this.lib.symbols.ca_add_exception_event(this.shim.shim_exception_cb(), null);
    this.lib.symbols.ca_add_fd_registration(this.shim.shim_fd_cb(), null);
    this.service();
  }

  private ptrOf(raw: Pointer | bigint | null): Pointer {
    const p = typeof raw === "bigint" ? (Number(raw) as Pointer) : raw;
    if (!p) throw new CaError("libca callback shim returned a null pointer");
    return p;
  }

  private eca(status: number, what: string): CaError {
    return errorFromEca(status, what, String(this.lib.symbols.ca_message(status)));
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
      this.connCb,
      null,
      0,
      this.chidOut,
    );
    if (st !== ECA.NORMAL) throw this.eca(st, `create channel ${name}`);
    ch.chid = Number(this.chidOut[0]) as Pointer;
    this.lib.symbols.ca_replace_access_rights_event(ch.chid, this.accessCb);
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
      const count = opts.count ?? 0;
      if (!Number.isInteger(count) || count < 0 || count > 0x7fffffff) {
        throw new CaError(`count must be a non-negative integer, got ${opts.count}`);
      }
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
            this.eventCb,
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
                this.eventCb,
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
    const mask = opts.mask ?? 5;
    if (!Number.isInteger(mask) || mask <= 0 || mask > 15) {
      throw new CaError(`mask must be a DBE_* combination 1..15, got ${opts.mask}`);
    }
    const limit = opts.queueLimit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new CaError(`queueLimit must be a positive integer, got ${opts.queueLimit}`);
    }
    if (opts.onUpdate !== undefined && typeof opts.onUpdate !== "function") {
      throw new CaError("onUpdate must be a function");
    }
    const ch = this.channel(name);
    const m = new Monitor(this.nextId++, ch, form, mask, opts.onUpdate, limit, (x) =>
      this.closeMonitor(x),
    );
    this.monitors.set(m.id, m);
    ch.monitors.add(m);
    if (ch.connected) this.subscribe(m);
    this.kick();
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
    this.kick();
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
    this.stopWake();
    if (this.safety) clearInterval(this.safety);
    this.safety = undefined;
    this.closedPromise = this.teardown();
    this.onClose?.();
  }

  private closedPromise: Promise<void> | undefined;
  private destroyed = false;

  /** Resolves once the libca context is destroyed (after close()). */
  whenClosed(): Promise<void> {
    return this.closedPromise ?? Promise.resolve();
  }

  /**
   * Destroying a context with live circuits makes libca wait (up to 30 s per circuit) for each
   * server to close its side. When that server runs on this very thread (our own CA server on the
   * main thread) it cannot answer while we block, so we first let the event loop run until libca
   * reports no circuits left, and only then destroy.
   */
  private async teardown(): Promise<void> {
    const sym = this.lib.symbols;
    const deadline = Date.now() + 5000;
    while (!this.destroyed && sym.ca_get_ioc_connection_count() > 0 && Date.now() < deadline) {
      sym.ca_pend_event(1e-12);
      this.shim.shim_reset();
      await Bun.sleep(2);
    }
    this.destroyNow();
  }

  /** Destroys the context now (called by teardown, or by caClient() needing a fresh context). */
  destroyNow(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.lib.symbols.ca_context_destroy();
    this.shim.shim_free();
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
    this.kick();
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
      this.eventCb,
      m.id as Pointer,
      this.evidOut,
    );
    if (st !== ECA.NORMAL) {
      this.exceptions.push(`subscribe ${m.name}: ${String(this.lib.symbols.ca_message(st))}`);
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

  /** Makes sure the context is serviced while there is work. */
  private kick(): void {
    if (this.closed) return;
    this.idleSince = 0;
    this.startWake();
    if (!this.safety) {
      this.safety = setInterval(() => this.safetyTick(), SAFETY_POLL_MS);
    }
    this.safety.ref();
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

  /** Lets libca deliver pending callbacks into the shim, then dispatches them. */
  service(): void {
    if (this.closed || this.servicing) return;
    this.servicing = true;
    try {
      this.lib.symbols.ca_pend_event(1e-12);
      if (this.wakeFd < 0) this.adoptWakeFd();
      this.drain();
    } finally {
      this.servicing = false;
    }
  }

  private adoptWakeFd(): void {
    const fd = this.shim.shim_wakefd();
    if (fd < 0) return;
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

  private drain(): void {
    const dropped = Number(this.shim.shim_take_dropped());
    if (dropped > 0) this.droppedRecords += dropped;
    const len = Number(this.shim.shim_len());
    if (len === 0) return;
    const raw = this.shim.shim_buf();
    const base = typeof raw === "bigint" ? (Number(raw) as Pointer) : raw;
    if (!base) return;
    const bytes = new Uint8Array(toArrayBuffer(base, 0, len));
    const dv = new DataView(bytes.buffer, bytes.byteOffset, len);
    const actions: Array<() => void> = [];
    for (let off = 0; off + REC_HEADER <= len; ) {
      const kind = dv.getInt32(off, true);
      const status = dv.getInt32(off + 4, true);
      const type = dv.getInt32(off + 8, true);
      const count = dv.getInt32(off + 12, true);
      const usr = dv.getUint32(off + 16, true) + dv.getUint32(off + 20, true) * 2 ** 32;
      const chid = dv.getUint32(off + 24, true) + dv.getUint32(off + 28, true) * 2 ** 32;
      const nbytes = dv.getUint32(off + 32, true);
      const data = off + REC_HEADER;
      off = data + ((nbytes + 7) & ~7);
      if (kind === REC.EVENT) {
        const a = this.onEvent(usr, status, type, count, bytes.subarray(data, data + nbytes));
        if (a) actions.push(a);
      } else if (kind === REC.CONN) {
        const ch = this.byChid.get(chid);
        if (ch) actions.push(() => this.onConn(ch, type === OP_CONN_UP));
      } else if (kind === REC.ACCESS) {
        const ch = this.byChid.get(chid);
        if (ch) {
          ch.canRead = (type & 1) !== 0;
          ch.canWrite = (type & 2) !== 0;
        }
      } else if (kind === REC.EXCEPTION) {
        const ctx = new TextDecoder().decode(bytes.subarray(data, data + nbytes));
        this.exceptions.push(`${String(this.lib.symbols.ca_message(status))}: ${ctx}`);
        if (this.exceptions.length > 50) this.exceptions.shift();
      }
    }
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
