/**
 * The audit trail: one entry per write to a PV and per REST mutation, from any path (CA, PVA,
 * PVWS/console, REST), with who (user@host or the REST caller), what (PV, old -> new) and the
 * result. Each entry is also one log line (logger "audit") so a site can ship it to its log store;
 * the last entries per plugin stay in memory in a bounded ring for `GET /plugins/:name/audit`.
 *
 * Bounded by construction: values are summarised to at most MAX_VALUE_CHARS, each plugin keeps at
 * most `perPlugin` entries and at most `maxPlugins` plugins are kept (the least recently written
 * one is dropped first), so a client hammering puts costs a fixed amount of memory.
 */
import type { Logger } from "pino";

/** Which protocol or interface a change came through. */
export type AuditVia = "ca" | "pva" | "pvws" | "console" | "rest" | "internal";

export type AuditResult = "ok" | "denied" | "failed";

export interface AuditEntry {
  /** Increases by one per entry over the process lifetime. */
  seq: number;
  /** ISO 8601 UTC time of the outcome. */
  time: string;
  /** Plugin the PV or the REST mutation belongs to ("" = the server itself). */
  plugin: string;
  /** "put" for PV writes; the REST operation otherwise (e.g. "add", "remove", "run"). */
  action: string;
  /** PV name for puts; null for REST mutations that are not about one PV. */
  pv: string | null;
  via: AuditVia;
  user: string;
  host: string;
  /** Summaries of the value before and the value written (null when not applicable). */
  old: string | null;
  new: string | null;
  result: AuditResult;
  /** Why it was denied or failed (null when ok). */
  reason: string | null;
}

export interface AuditInput {
  plugin?: string | undefined;
  action?: string | undefined;
  pv?: string | undefined;
  via: AuditVia;
  user: string;
  host: string;
  old?: unknown;
  new?: unknown;
  result: AuditResult;
  reason?: string | undefined;
}

export interface AuditOptions {
  /** Entries kept per plugin (default 1000). */
  perPlugin?: number;
  /** Plugins (rings) kept (default 1024). */
  maxPlugins?: number;
  log?: Logger | undefined;
  /** The plugin a PV belongs to, for puts recorded without one. */
  pluginOf?: ((pv: string) => string | undefined) | undefined;
}

/** Longest value summary in an entry (characters). */
export const MAX_VALUE_CHARS = 120;
const MAX_FIELD_CHARS = 256;
const ARRAY_PREVIEW = 8;

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** A short, bounded text form of a PV value for the audit trail. */
export function summarizeValue(v: unknown): string | null {
  if (v === undefined) return null;
  if (typeof v === "string")
    return clip(
      JSON.stringify(v.length > MAX_VALUE_CHARS ? v.slice(0, MAX_VALUE_CHARS) : v),
      MAX_VALUE_CHARS,
    );
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint" || v === null) {
    return String(v);
  }
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = v as ArrayLike<unknown>;
    const head: string[] = [];
    for (let i = 0; i < Math.min(a.length, ARRAY_PREVIEW); i++) head.push(String(a[i]));
    const more = a.length > ARRAY_PREVIEW ? ", …" : "";
    return clip(`[${a.length}: ${head.join(", ")}${more}]`, MAX_VALUE_CHARS);
  }
  try {
    return clip(JSON.stringify(v) ?? String(v), MAX_VALUE_CHARS);
  } catch {
    return clip(String(v), MAX_VALUE_CHARS);
  }
}

/** A fixed-capacity ring of entries, oldest overwritten first. */
class Ring {
  private readonly items: (AuditEntry | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }

  push(e: AuditEntry): void {
    this.items[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The last `n` entries, oldest first. */
  last(n: number): AuditEntry[] {
    const k = Math.max(0, Math.min(n, this.count));
    const out: AuditEntry[] = [];
    for (let i = k; i > 0; i--) {
      const e = this.items[(this.next - i + this.capacity) % this.capacity];
      if (e) out.push(e);
    }
    return out;
  }
}

export class AuditLog {
  private readonly rings = new Map<string, Ring>();
  private readonly perPlugin: number;
  private readonly maxPlugins: number;
  private seq = 0;

  constructor(private readonly opts: AuditOptions = {}) {
    this.perPlugin = Math.max(1, Math.floor(opts.perPlugin ?? 1000));
    this.maxPlugins = Math.max(1, Math.floor(opts.maxPlugins ?? 1024));
  }

  /** Records an entry, logs it, and returns it. */
  record(input: AuditInput): AuditEntry {
    const pv = input.pv === undefined ? null : clip(input.pv, MAX_FIELD_CHARS);
    const plugin =
      input.plugin ?? (input.pv !== undefined ? this.opts.pluginOf?.(input.pv) : undefined) ?? "";
    const entry: AuditEntry = {
      seq: ++this.seq,
      time: new Date().toISOString(),
      plugin: clip(plugin, MAX_FIELD_CHARS),
      action: clip(input.action ?? "put", 64),
      pv,
      via: input.via,
      user: clip(input.user, MAX_FIELD_CHARS),
      host: clip(input.host, MAX_FIELD_CHARS),
      old: summarizeValue(input.old),
      new: summarizeValue(input.new),
      result: input.result,
      reason: input.reason === undefined ? null : clip(input.reason, MAX_FIELD_CHARS),
    };
    this.ring(entry.plugin).push(entry);
    this.log(entry);
    return entry;
  }

  private ring(plugin: string): Ring {
    let r = this.rings.get(plugin);
    if (r) {
      // Map order is insertion order: re-inserting marks this plugin most recently written.
      this.rings.delete(plugin);
      this.rings.set(plugin, r);
      return r;
    }
    if (this.rings.size >= this.maxPlugins) {
      const oldest = this.rings.keys().next().value;
      if (oldest !== undefined) this.rings.delete(oldest);
    }
    r = new Ring(this.perPlugin);
    this.rings.set(plugin, r);
    return r;
  }

  private log(e: AuditEntry): void {
    const log = this.opts.log;
    if (!log) return;
    const who = `${e.user || "?"}@${e.host || "?"}`;
    const what = e.pv ? `${e.pv} ${e.old ?? "?"} -> ${e.new ?? "?"}` : e.action;
    const msg = `audit ${e.via} ${who} ${what} ${e.result}${e.reason ? `: ${e.reason}` : ""}`;
    if (e.result === "ok") log.info({ audit: e }, msg);
    else log.warn({ audit: e }, msg);
  }

  /** The last `limit` entries of `plugin`, oldest first (empty for an unknown plugin). */
  query(plugin: string, limit = 100): AuditEntry[] {
    const n = Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : this.perPlugin;
    return this.rings.get(plugin)?.last(n) ?? [];
  }

  /** Plugins with entries. */
  plugins(): string[] {
    return [...this.rings.keys()];
  }
}
