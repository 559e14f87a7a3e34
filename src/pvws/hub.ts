/**
 * The PV Web Socket endpoint's server side: the PV source it serves, the sessions, the write
 * policy and the counters. `pvwsPlugin` mounts it on an Elysia app as a WebSocket route.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import type { Logger } from "pino";
import { type AccessPolicy, type ClientIdentity, RIGHTS } from "../pv/access.ts";
import type { Pv } from "../pv/pv.ts";
import type { PvSource } from "../pv/source.ts";
import type { WriteContext } from "../pv/types.ts";
import { encodeChange } from "./encode.ts";
import { type RemoteCaClient, RemotePvs } from "./remote.ts";
import {
  type PvwsHost,
  type PvwsLimits,
  PvwsSession,
  type PvwsSink,
  type PvwsStats,
} from "./session.ts";

/**
 * Decides a write the PV itself would accept: return a reason to refuse it, or null. Access
 * security (issue 14) plugs in here with the same rules as CA writes.
 */
export type WriteAuthorizer = (pv: Pv, ctx: WriteContext) => string | null;

export interface PvwsOptions {
  source: PvSource;
  /**
   * The REST API token. When set, a client writes only after presenting it (an `Authorization:
   * Bearer` header on the upgrade request, or a `{"type":"auth","token":…}` message): the same
   * people who may change plugins over REST may change their PVs from a browser.
   */
  apiToken: string | null;
  authorizeWrite?: WriteAuthorizer;
  /**
   * Access security (src/access): the same rules as CA and PVA writes. A PVWS client is user
   * `pvws` (`pvws-token` once it presented the API token) on the host it connects from.
   */
  access?: AccessPolicy;
  logger?: Logger;
  limits?: Partial<PvwsLimits>;
  /**
   * The CA client for other IOCs' PVs (`ca://NAME` not served here); without it such names stay
   * disconnected until this server has the PV.
   */
  remote?: () => RemoteCaClient;
  /**
   * Whether `remote` can work on this host (libca installed), asked once, at the first `ca://`
   * name rather than at start: finding out loads the library (src/web/mount.ts). Absent: yes.
   */
  remoteAvailable?: () => boolean;
}

/** How often remote watches nobody uses any more are closed. */
const REMOTE_SWEEP_MS = 30_000;

export const DEFAULT_PVWS_LIMITS: PvwsLimits = {
  maxSubscriptions: 10_000,
  maxControlQueue: 256,
  highWaterBytes: 1 << 20,
};

/**
 * Bun's WebSocket settings for the app that listens (Elysia takes them from the root app's
 * `websocket` config, not from the route). 1 MiB messages: a subscribe of thousands of names
 * fits; more closes that connection (1009). Slow clients are handled by squashing (session.ts);
 * the socket's own buffer limit is a backstop that closes a client that never reads.
 */
export const PVWS_WEBSOCKET_CONFIG = {
  maxPayloadLength: 1 << 20,
  backpressureLimit: 16 * 1024 * 1024,
  closeOnBackpressureLimit: true,
  idleTimeout: 120,
} as const;

function sha(s: string): Buffer {
  return createHash("sha256").update(s).digest();
}

/** Serves a PV source to PVWS sessions. */
export class PvwsHub implements PvwsHost {
  readonly limits: PvwsLimits;
  readonly stats: PvwsStats = {
    clients: 0,
    subscriptions: 0,
    updatesSent: 0,
    updatesSquashed: 0,
    bytesSent: 0,
    writes: 0,
    writesRefused: 0,
    badMessages: 0,
    repliesDropped: 0,
  };
  private readonly waiting = new Map<string, Set<(pv: Pv) => void>>();
  /** Last plain-change message per PV and client-given name: one JSON encoding per update. */
  private readonly changes = new WeakMap<Pv, Map<string, { generation: number; text: string }>>();
  private readonly unwatch: () => void;
  /** Other IOCs' PVs (null without a CA client). */
  readonly remote: RemotePvs | null;
  /** The answer of `remoteAvailable`, once asked. */
  private remoteOk: boolean | undefined;
  private readonly sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly opts: PvwsOptions) {
    this.limits = { ...DEFAULT_PVWS_LIMITS, ...opts.limits };
    this.remote = opts.remote ? new RemotePvs(opts.remote) : null;
    if (this.remote !== null) {
      const remote = this.remote;
      this.sweeper = setInterval(() => remote.sweep(), REMOTE_SWEEP_MS);
      this.sweeper.unref?.();
    }
    this.unwatch = opts.source.onAdd((pv) => {
      const cbs = this.waiting.get(pv.name);
      if (cbs === undefined) return;
      this.waiting.delete(pv.name);
      for (const cb of cbs) cb(pv);
    });
  }

  /** `ca://X` and `pva://X` name this server's PV X (dbwr displays use both); a bare X too. */
  static localName(name: string): string {
    const m = /^(?:ca|pva):\/\/(.*)$/.exec(name);
    return m ? (m[1] ?? "") : name;
  }

  lookup(name: string): Pv | undefined {
    return this.opts.source.get(PvwsHub.localName(name));
  }

  whenServed(name: string, cb: (pv: Pv) => void): () => void {
    const key = PvwsHub.localName(name);
    // `ca://X` not served here: another IOC's PV, through the CA client. Whichever of the local
    // registry and the remote IOC serves it first wins; the other wait is cancelled.
    if (this.remote !== null && name.startsWith("ca://") && key !== "" && this.canWatchRemote()) {
      let done = false;
      let cancelRemote = (): void => {};
      const once = (pv: Pv) => {
        if (done) return;
        done = true;
        cancelLocal();
        cancelRemote();
        cb(pv);
      };
      const cancelLocal = this.waitLocal(key, once);
      try {
        cancelRemote = this.remote.watch(key, once);
      } catch (err) {
        this.opts.logger?.warn({ err, pv: key }, "PVWS: cannot watch a remote PV");
      }
      return () => {
        done = true;
        cancelLocal();
        cancelRemote();
      };
    }
    return this.waitLocal(key, cb);
  }

  /** Whether remote names can be watched; the first call asks `remoteAvailable` (and says no once). */
  private canWatchRemote(): boolean {
    if (this.remoteOk === undefined) {
      this.remoteOk = this.opts.remoteAvailable?.() ?? true;
      if (!this.remoteOk) {
        this.opts.logger?.warn(
          "PVWS: no Channel Access client library (libca) on this host: ca:// names are served only when this IOC has the PV",
        );
      }
    }
    return this.remoteOk;
  }

  private waitLocal(key: string, cb: (pv: Pv) => void): () => void {
    let set = this.waiting.get(key);
    if (set === undefined) {
      set = new Set();
      this.waiting.set(key, set);
    }
    set.add(cb);
    return () => {
      const s = this.waiting.get(key);
      s?.delete(cb);
      if (s?.size === 0) this.waiting.delete(key);
    };
  }

  changeMessage(name: string, pv: Pv): string {
    let byName = this.changes.get(pv);
    if (byName === undefined) {
      byName = new Map();
      this.changes.set(pv, byName);
    }
    const hit = byName.get(name);
    if (hit !== undefined && hit.generation === pv.generation) return hit.text;
    // Bounded: a client could subscribe one PV under endless spellings (ca://X, pva://X, X…).
    if (byName.size >= 8 && hit === undefined) byName.clear();
    const text = encodeChange(name, pv);
    byName.set(name, { generation: pv.generation, text });
    return text;
  }

  mayWrite(session: PvwsSession): boolean {
    return this.opts.apiToken === null || session.authenticated;
  }

  /** Who a session is for access security (recomputed when it authenticates). */
  identity(session: PvwsSession): ClientIdentity | undefined {
    const user = session.authenticated ? "pvws-token" : "pvws";
    return this.opts.access?.identify(user, session.identity.peer, session.identity.peer);
  }

  /** What access security says of `session` writing `pv` (true without access security). */
  private accessAllows(pv: Pv, session: PvwsSession): boolean {
    const access = this.opts.access;
    const who = session.who;
    return (
      access === undefined || who === undefined || (access.rights(pv, who) & RIGHTS.WRITE) !== 0
    );
  }

  mayWritePv(pv: Pv, session: PvwsSession): boolean {
    return pv.writable && this.mayWrite(session) && this.accessAllows(pv, session);
  }

  authorizeWrite(pv: Pv, ctx: WriteContext, session: PvwsSession): string | null {
    if (!this.mayWrite(session)) {
      return "this server needs its API token first ({type: auth, token})";
    }
    // A read-only PV is refused by Pv.write itself, with its own reason.
    if (!this.accessAllows(pv, session)) return "write access denied by access security";
    return this.opts.authorizeWrite?.(pv, ctx) ?? null;
  }

  recordWrite(
    pv: Pv,
    session: PvwsSession,
    old: unknown,
    value: unknown,
    result: "ok" | "denied" | "failed",
    reason?: string,
  ): void {
    const who = session.who ?? { user: "pvws", host: session.identity.peer };
    this.opts.access?.recordWrite({ pv, via: "pvws", who, old, value, result, reason });
  }

  /** Calls `cb` when access rights may have changed; returns the unsubscribe function. */
  onRightsChange(cb: () => void): () => void {
    return this.opts.access?.onChange(cb) ?? (() => {});
  }

  tokenMatches(token: string): boolean {
    const t = this.opts.apiToken;
    return t !== null && timingSafeEqual(sha(token), sha(t));
  }

  /** Whether an upgrade request's Authorization header carries the token. */
  bearerMatches(header: string | null): boolean {
    const m = header === null ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    return m?.[1] !== undefined && this.tokenMatches(m[1]);
  }

  /** A session for a new connection. */
  open(sink: PvwsSink, peer: string, authHeader: string | null): PvwsSession {
    return new PvwsSession(this, sink, { peer, authenticated: this.bearerMatches(authHeader) });
  }

  /** Stops watching the source and other IOCs (sessions are closed by their sockets). */
  dispose(): void {
    this.unwatch();
    this.waiting.clear();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.remote?.close();
  }
}

/** Where dbwr and other PVWS clients expect the socket (`ws://host/pvws/pv`). */
export const PVWS_PATH = "/pvws/pv";

/**
 * The Elysia plugin: a WebSocket route at {@link PVWS_PATH}. Mount it on the root app (not under
 * /api/v1) so `ws://host:port/pvws/pv` works as with a PVWS service.
 */
export function pvwsPlugin(hub: PvwsHub, logger?: Logger) {
  const log = logger?.child({ component: "pvws" });
  const sessions = new Map<string, PvwsSession>();
  return new Elysia({ name: "iocmng-pvws" }).ws(PVWS_PATH, {
    open(ws) {
      // Elysia's copy of the ServerWebSocket type lacks getBufferedAmount (Bun has had it since 1.2).
      const raw = ws.raw as typeof ws.raw & { getBufferedAmount(): number };
      const sink: PvwsSink = {
        send: (text) => raw.sendText(text),
        getBufferedAmount: () => raw.getBufferedAmount(),
        cork: (fn) => {
          raw.cork(fn);
        },
        ping: () => {
          raw.ping();
        },
      };
      const auth = ws.data.headers?.authorization ?? null;
      sessions.set(ws.id, hub.open(sink, raw.remoteAddress, auth));
      log?.debug({ peer: raw.remoteAddress }, "PVWS client connected");
    },
    message(ws, message) {
      try {
        sessions.get(ws.id)?.handle(message);
      } catch (err) {
        // A bug of ours must cost this message, not the server or the other clients.
        log?.error({ err }, "PVWS message failed");
      }
    },
    drain(ws) {
      sessions.get(ws.id)?.drained();
    },
    close(ws) {
      sessions.get(ws.id)?.close();
      sessions.delete(ws.id);
    },
  });
}
