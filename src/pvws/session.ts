/**
 * One PV Web Socket client: its subscriptions, what it was already sent, and a bounded outbox.
 *
 * Updates are never queued as messages. A changed PV only marks its subscription dirty; the
 * message is built from the PV's current state when the socket can take it. So a slow client
 * holds at most one pending update per subscribed PV (the latest: intermediate values are
 * squashed and counted), and its memory is bounded by its subscription count, not by how fast
 * PVs change. Replies (errors, list, echo) go to a small FIFO that drops its oldest when full.
 */
import type { ClientIdentity } from "../pv/access.ts";
import type { Pv } from "../pv/pv.ts";
import { DBE, PvWriteError, type WriteContext } from "../pv/types.ts";
import {
  encodeDisconnected,
  encodeUpdate,
  freshState,
  isPlainChange,
  type SentState,
} from "./encode.ts";

/** What a session needs of its WebSocket (Bun's ServerWebSocket fits; tests may pass fakes). */
export interface PvwsSink {
  /** Sends one text frame; Bun returns -1 when it had to buffer it, 0 when dropped. */
  send(text: string): number;
  /** Bytes written to the socket but not yet sent. */
  getBufferedAmount(): number;
  /** Runs `fn` with the socket corked: its frames leave in as few writes as possible. */
  cork(fn: () => void): void;
  ping(): void;
}

/** Server-wide services a session uses (implemented by PvwsHub). */
export interface PvwsHost {
  /** Finds the served PV for a client-given name (scheme stripped), or undefined. */
  lookup(name: string): Pv | undefined;
  /** Calls `cb` once a PV named `name` is served (again); returns the cancel function. */
  whenServed(name: string, cb: (pv: Pv) => void): () => void;
  /** Reason a write is refused (null: allowed); access control plugs in here. */
  authorizeWrite(pv: Pv, ctx: WriteContext, session: PvwsSession): string | null;
  /** Whether this client may write at all (the token). */
  mayWrite(session: PvwsSession): boolean;
  /** Whether this client may write `pv` now (drives the `readonly` flag it is sent). */
  mayWritePv(pv: Pv, session: PvwsSession): boolean;
  /** The session's identity for access security (undefined without access security). */
  identity(session: PvwsSession): ClientIdentity | undefined;
  /** Records a write's outcome in the audit trail (access security). */
  recordWrite(
    pv: Pv,
    session: PvwsSession,
    old: unknown,
    value: unknown,
    result: "ok" | "denied" | "failed",
    reason?: string,
  ): void;
  /** Calls `cb` when access rights may have changed; returns the unsubscribe function. */
  onRightsChange(cb: () => void): () => void;
  /** The plain-change message of `pv` under `name` for its current update (shared by clients). */
  changeMessage(name: string, pv: Pv): string;
  /** Checks a bearer token offered by an `auth` message. */
  tokenMatches(token: string): boolean;
  readonly limits: PvwsLimits;
  readonly stats: PvwsStats;
}

/** Bounds on one client. */
export interface PvwsLimits {
  /** Most PVs one client may subscribe to. */
  maxSubscriptions: number;
  /** Replies kept while the client does not read (oldest dropped beyond). */
  maxControlQueue: number;
  /** Bytes buffered in the socket beyond which updates wait for the client to drain. */
  highWaterBytes: number;
}

/** Running counters of the PVWS endpoint (read by /metrics). */
export interface PvwsStats {
  clients: number;
  subscriptions: number;
  updatesSent: number;
  /** Updates replaced by a newer one before the client could take them. */
  updatesSquashed: number;
  bytesSent: number;
  writes: number;
  writesRefused: number;
  badMessages: number;
  /** Replies dropped because a client did not read them. */
  repliesDropped: number;
}

interface Sub {
  /** The name as the client gave it (updates echo it). */
  readonly name: string;
  pv: Pv | undefined;
  sent: SentState;
  dirty: boolean;
  /** Cancels the PV listener / removal hook, or the wait for the PV to appear. */
  detach: () => void;
}

/** Longest PV name accepted (libca's limit plus room for a `pva://` scheme). */
const MAX_NAME_LENGTH = 1024;
const VALUE_MASK = DBE.VALUE | DBE.ALARM | DBE.PROPERTY;

export class PvwsSession {
  private readonly subs = new Map<string, Sub>();
  private readonly dirty: Sub[] = [];
  private readonly control: string[] = [];
  private scheduled = false;
  private closed = false;
  /** Set by an `auth` message with the server's token (or a bearer header at upgrade). */
  authenticated: boolean;
  /** Who this client is for access security. */
  who: ClientIdentity | undefined;
  private readonly offRights: () => void;

  constructor(
    private readonly host: PvwsHost,
    private readonly sink: PvwsSink,
    /** Who this client is, for write contexts and logs. */
    readonly identity: { peer: string; authenticated: boolean },
  ) {
    this.authenticated = identity.authenticated;
    this.who = host.identity(this);
    // Rights changed (rules reloaded, a CALC input moved): every PV gets its readonly flag again.
    this.offRights = host.onRightsChange(() => this.remarkAll());
    host.stats.clients++;
  }

  /** Handles one message as Elysia parsed it (an object when it was JSON, else the raw text). */
  handle(msg: unknown): void {
    if (this.closed) return;
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
      const what = typeof msg === "string" ? "malformed JSON" : `a JSON ${typeof msg}`;
      this.error(`expected a JSON object with a 'type', got ${what}`);
      return;
    }
    const m = msg as Record<string, unknown>;
    switch (m.type) {
      case "subscribe":
      case "monitor": // epics2web's word for it, which PVWS accepts too
        {
          this.forNames(m, (n) => this.subscribe(n));
          return;
        }
      case "clear": {
        this.forNames(m, (n) => this.clear(n));
        return;
      }
      case "list": {
        this.reply(JSON.stringify({ type: "list", pvs: [...this.subs.keys()] }));
        return;
      }
      case "write":
        return void this.write(m);
      case "echo": {
        this.reply(JSON.stringify(m));
        return;
      }
      case "ping":
        this.sink.ping();
        return;
      case "auth": {
        this.auth(m);
        return;
      }
      default:
        if (m.type === undefined) {
          this.error("missing 'type'");
          return;
        }
        {
          this.error(`unknown message type ${JSON.stringify(String(m.type).slice(0, 40))}`);
          return;
        }
    }
  }

  private forNames(m: Record<string, unknown>, each: (name: string) => void): void {
    const pvs = m.pvs;
    if (!Array.isArray(pvs)) {
      this.error(`'${String(m.type)}' needs 'pvs': [names]`);
      return;
    }
    for (const n of pvs) {
      if (typeof n !== "string" || n.length === 0 || n.length > MAX_NAME_LENGTH) {
        this.error(`invalid PV name ${JSON.stringify(n)?.slice(0, 60) ?? String(n)}`);
        continue;
      }
      each(n);
    }
  }

  private subscribe(name: string): void {
    if (this.subs.has(name)) {
      // PVWS answers a repeated subscribe with nothing; a full update is more useful to a page
      // that re-subscribes after re-rendering, and costs one message.
      const sub = this.subs.get(name)!;
      sub.sent = freshState();
      this.mark(sub, false);
      return;
    }
    if (this.subs.size >= this.host.limits.maxSubscriptions) {
      this.error(`more than ${this.host.limits.maxSubscriptions} PVs on one connection`);
      return;
    }
    const sub: Sub = { name, pv: undefined, sent: freshState(), dirty: false, detach: () => {} };
    this.subs.set(name, sub);
    this.host.stats.subscriptions++;
    const pv = this.host.lookup(name);
    if (pv === undefined) this.unbind(sub);
    else this.bind(sub, pv);
  }

  /** Attaches `sub` to a served PV: a full update now, then one per change. */
  private bind(sub: Sub, pv: Pv): void {
    sub.pv = pv;
    sub.sent = freshState();
    const off = pv.subscribe((mask) => {
      if ((mask & VALUE_MASK) !== 0) this.mark(sub, true);
    });
    const offRemove = pv.onRemove(() => {
      if (this.subs.get(sub.name) === sub) this.unbind(sub);
    });
    sub.detach = () => {
      off();
      offRemove();
    };
    this.mark(sub, false);
  }

  /** The PV is not served: tell the client, and bind again once it is. */
  private unbind(sub: Sub): void {
    sub.detach();
    sub.pv = undefined;
    this.mark(sub, false);
    sub.detach = this.host.whenServed(sub.name, (pv) => {
      if (this.subs.get(sub.name) === sub) this.bind(sub, pv);
    });
  }

  private clear(name: string): void {
    const sub = this.subs.get(name);
    if (sub === undefined) return;
    sub.detach();
    this.subs.delete(name);
    this.host.stats.subscriptions--;
    // A pending update of a cleared PV is not sent (flush skips subs no longer in the map).
  }

  private async write(m: Record<string, unknown>): Promise<void> {
    const name = m.pv;
    if (typeof name !== "string") {
      this.error("'write' needs 'pv': name");
      return;
    }
    if (!("value" in m) || m.value === null) {
      this.error(`'write' to ${name} needs 'value'`);
      return;
    }
    const sub = this.subs.get(name);
    const stats = this.host.stats;
    stats.writes++;
    const refuse = (reason: string) => {
      stats.writesRefused++;
      this.error(reason, name);
    };
    if (sub === undefined) return refuse(`cannot write ${name}: not subscribed`);
    const pv = sub.pv;
    if (pv === undefined) return refuse(`cannot write ${name}: not connected`);
    const ctx: WriteContext = {
      user: this.authenticated ? "bearer" : "anonymous",
      host: this.identity.peer,
      peer: `pvws:${this.identity.peer}`,
    };
    const old = pv.value;
    const why = this.host.authorizeWrite(pv, ctx, this);
    if (why !== null) {
      this.host.recordWrite(pv, this, old, m.value, "denied", why);
      return refuse(`cannot write ${name}: ${why}`);
    }
    try {
      await pv.write(m.value, ctx);
      this.host.recordWrite(pv, this, old, m.value, "ok");
    } catch (e) {
      const reason = e instanceof PvWriteError ? e.reason : e instanceof Error ? e.message : "";
      this.host.recordWrite(pv, this, old, m.value, "failed", reason);
      refuse(`cannot write ${name}: ${reason || "refused"}`);
    }
  }

  private auth(m: Record<string, unknown>): void {
    if (typeof m.token !== "string" || !this.host.tokenMatches(m.token)) {
      this.error("auth: wrong token");
      return;
    }
    this.authenticated = true;
    this.who = this.host.identity(this);
    // Read-only flags may change: every subscription gets an update saying so.
    this.remarkAll();
    this.reply(JSON.stringify({ type: "auth", ok: true }));
  }

  private remarkAll(): void {
    for (const sub of this.subs.values()) this.mark(sub, false);
  }

  private error(message: string, pv?: string): void {
    this.host.stats.badMessages += pv === undefined ? 1 : 0;
    const out: Record<string, string> = { type: "error", message };
    if (pv !== undefined) out.pv = pv;
    this.reply(JSON.stringify(out));
  }

  private reply(text: string): void {
    if (this.control.length >= this.host.limits.maxControlQueue) {
      this.control.shift();
      this.host.stats.repliesDropped++;
    }
    this.control.push(text);
    this.schedule();
  }

  private mark(sub: Sub, change: boolean): void {
    if (sub.dirty) {
      if (change) this.host.stats.updatesSquashed++;
      return;
    }
    sub.dirty = true;
    this.dirty.push(sub);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    // One flush per turn of the event loop: every change made in this turn leaves together.
    setImmediate(() => this.flush());
  }

  /** Sends what the socket can take now; the rest waits for `drained()`. */
  flush(): void {
    this.scheduled = false;
    if (this.closed) return;
    const high = this.host.limits.highWaterBytes;
    if (this.sink.getBufferedAmount() > high) return;
    this.sink.cork(() => this.sendPending(high));
  }

  /**
   * Updates first, then replies: an update marked before a reply was asked for leaves before that
   * reply, so an `echo` is a barrier (what changed before it has been sent when it comes back).
   */
  private sendPending(high: number): void {
    const stats = this.host.stats;
    let sent = 0;
    for (; sent < this.dirty.length; sent++) {
      if (this.sink.getBufferedAmount() > high) break;
      const sub = this.dirty[sent]!;
      sub.dirty = false;
      if (this.subs.get(sub.name) !== sub) continue;
      const pv = sub.pv;
      const readonly = pv === undefined || !this.host.mayWritePv(pv, this);
      const text =
        pv === undefined
          ? encodeDisconnected(sub.name, sub.sent)
          : isPlainChange(pv, sub.sent, readonly)
            ? this.host.changeMessage(sub.name, pv)
            : encodeUpdate(sub.name, pv, sub.sent, readonly);
      this.sink.send(text);
      stats.updatesSent++;
      stats.bytesSent += text.length;
    }
    this.dirty.splice(0, sent);
    // Replies wait while updates do: their order must not be turned around by a full buffer.
    if (this.dirty.length > 0) return;
    let i = 0;
    for (; i < this.control.length; i++) {
      const text = this.control[i]!;
      this.sink.send(text);
      stats.bytesSent += text.length;
    }
    this.control.splice(0, i);
  }

  /** The socket sent what it had buffered: continue with what waits. */
  drained(): void {
    if (this.dirty.length > 0 || this.control.length > 0) this.flush();
  }

  /** Names this client is subscribed to. */
  get names(): string[] {
    return [...this.subs.keys()];
  }

  /** Drops every subscription; nothing is sent afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.offRights();
    for (const sub of this.subs.values()) sub.detach();
    this.host.stats.subscriptions -= this.subs.size;
    this.host.stats.clients--;
    this.subs.clear();
    this.dirty.length = 0;
    this.control.length = 0;
  }
}
