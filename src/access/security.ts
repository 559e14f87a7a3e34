/**
 * Access security as a running service: loads the access security file, reloads it atomically
 * (a file that does not parse leaves the rules in force and reports its line and column), keeps
 * the CALC inputs (INPx) up to date from the PVs this server serves, and tells listeners when
 * decisions may have changed so protocol servers re-send access rights on live connections.
 *
 * Without a file access security is off: every client may read and write every writable PV,
 * as an IOC without asSetFilename.
 */
import { lookup } from "node:dns/promises";
import { readFile, stat } from "node:fs/promises";
import { isIPv4 } from "node:net";
import type { Logger } from "pino";
import type { ClientIdentity } from "../pv/access.ts";
import type { Pv } from "../pv/pv.ts";
import type { PvSource } from "../pv/source.ts";
import { DBE, Severity } from "../pv/types.ts";
import { Access, type AcfConfig, AcfError, decodeAcf, MAX_ACF_BYTES, parseAcf } from "./acf.ts";
import { CompiledAcf, type Decision, type HostMode } from "./rules.ts";

/** Who a client is, as access rules see it: user name and host (a name or an IPv4 address). */
export type Identity = ClientIdentity;

export interface AccessSecurityOptions {
  /** The access security file; undefined = access security off. */
  file?: string | undefined;
  /** The PVs INPx names are looked up in. */
  source?: PvSource | undefined;
  /** How hosts are matched (default "names": the client's HOST_NAME, as rsrv by default). */
  hostMode?: HostMode | undefined;
  log?: Logger | undefined;
  /** Resolves a HAG host name to an IPv4 address in "addresses" mode (default: DNS lookup). */
  resolve?: ((host: string) => Promise<string | undefined>) | undefined;
}

export type ReloadResult =
  | { ok: true; warnings: string[] }
  | { ok: false; error: string; line?: number; column?: number };

/** `groups` = the groups whose decisions may have changed; null = all (a reload). */
export type ChangeListener = (groups: ReadonlySet<string> | null) => void;

/** Snapshot for REST and diagnostics. */
export interface AccessStatus {
  enabled: boolean;
  file: string | null;
  hostMode: HostMode;
  loadedAt: string | null;
  groups: string[];
  warnings: string[];
  lastError: { message: string; line?: number; column?: number; at: string } | null;
  inputs: { asg: string; input: string; pv: string; value: number | null }[];
}

const ALL: Decision = Access.RPC;
const RESOLVE_TIMEOUT_MS = 5000;

async function defaultResolve(host: string): Promise<string | undefined> {
  if (isIPv4(host)) return host;
  const timeout = new Promise<undefined>((r) => setTimeout(r, RESOLVE_TIMEOUT_MS).unref?.());
  const found = lookup(host, { family: 4 }).then(
    (a) => a.address,
    () => undefined,
  );
  return Promise.race([found, timeout]);
}

/** Converts a PV's state to a CALC input, or undefined when it cannot be one (asCa: input bad). */
export function inputValue(pv: Pv): number | undefined {
  if (pv.removed || pv.severity === Severity.INVALID) return undefined;
  const v = pv.value;
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const t = v.trim();
    const n = t === "" ? Number.NaN : Number(t);
    return Number.isNaN(n) ? undefined : n;
  }
  return v.length > 0 ? (v[0] as number) : undefined;
}

export class AccessSecurity {
  readonly hostMode: HostMode;
  private acf: CompiledAcf | null = null;
  private loadedAt: Date | null = null;
  private lastError: AccessStatus["lastError"] = null;
  private readonly listeners = new Set<ChangeListener>();
  private detach: (() => void)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The error of the last failed load, rethrown as is by open(). */
  private lastThrown: Error | undefined;

  private constructor(private readonly opts: AccessSecurityOptions) {
    this.hostMode = opts.hostMode ?? "names";
  }

  /**
   * Starts access security. With a file, the file must load: a malformed or missing file throws
   * (AcfError with line and column, or the I/O error), so a server refuses to start on it.
   */
  static async open(opts: AccessSecurityOptions = {}): Promise<AccessSecurity> {
    const as = new AccessSecurity(opts);
    if (opts.file !== undefined) {
      const r = await as.reload();
      if (!r.ok) {
        as.close();
        throw as.lastThrown ?? new Error(r.error);
      }
    }
    return as;
  }

  get enabled(): boolean {
    return this.opts.file !== undefined;
  }

  get file(): string | undefined {
    return this.opts.file;
  }

  /**
   * The identity access rules see for a client that announced `user` and `clientHost` and
   * connected from `peer` ("a.b.c.d" or "a.b.c.d:port"): in "names" mode the announced host, in
   * "addresses" mode the peer's address (what the client says about its host is ignored).
   */
  identify(user: string, clientHost: string, peer: string): Identity {
    if (this.hostMode === "names") return { user, host: clientHost.toLowerCase() };
    let ip = peer.replace(/^::ffff:/i, "");
    const colon = ip.lastIndexOf(":");
    if (colon > 0 && isIPv4(ip.slice(0, colon))) ip = ip.slice(0, colon);
    return { user, host: ip };
  }

  /** The decision for `id` on a PV of group `asg` at access level `level` (0 = value fields). */
  rightsFor(asg: string | undefined, id: Identity, level = 0): Decision {
    if (!this.enabled) return ALL;
    const acf = this.acf;
    // Enabled but never loaded cannot happen after open(); deny rather than allow if it did.
    return acf ? acf.decide(asg, id.user, id.host, level) : 0;
  }

  /** Registers a listener of decision changes; returns the function that removes it. */
  onChange(cb: ChangeListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Re-reads the file. Never throws: a failure is returned and the rules in force stay. */
  reload(): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => {});
    return run;
  }

  private async reloadNow(): Promise<ReloadResult> {
    const file = this.opts.file;
    if (file === undefined)
      return { ok: false, error: "access security is off (no file configured)" };
    let config: AcfConfig;
    let compiled: CompiledAcf;
    try {
      // Size first: a huge file (or a device) is refused before it is read into memory.
      const info = await stat(file);
      if (!info.isFile()) throw new Error("not a regular file");
      if (info.size > MAX_ACF_BYTES)
        throw new AcfError(`file larger than ${MAX_ACF_BYTES} bytes`, 1, 1, file);
      const bytes = new Uint8Array(await readFile(file));
      config = parseAcf(decodeAcf(bytes, file), file);
      compiled = new CompiledAcf(config, this.hostMode, await this.resolveHags(config));
    } catch (e) {
      return this.failed(e);
    }
    if (this.closed) return { ok: false, error: "access security closed" };
    this.install(compiled);
    this.loadedAt = new Date();
    this.lastError = null;
    this.opts.log?.info(
      { file, groups: compiled.groups.size, warnings: config.warnings },
      "access security file loaded",
    );
    this.emit(null);
    return { ok: true, warnings: config.warnings };
  }

  private failed(e: unknown): ReloadResult {
    const at = new Date().toISOString();
    if (e instanceof AcfError) {
      this.lastThrown = e;
      this.lastError = { message: e.message, line: e.line, column: e.column, at };
      this.opts.log?.error({ file: this.opts.file, line: e.line, column: e.column }, e.message);
      return { ok: false, error: e.message, line: e.line, column: e.column };
    }
    const message = `${this.opts.file}: ${e instanceof Error ? e.message : String(e)}`;
    this.lastThrown = new Error(message);
    this.lastError = { message, at };
    this.opts.log?.error({ file: this.opts.file }, message);
    return { ok: false, error: message };
  }

  private async resolveHags(config: AcfConfig): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (this.hostMode !== "addresses") return out;
    const resolve = this.opts.resolve ?? defaultResolve;
    const names = new Set<string>();
    for (const list of config.hags.values()) for (const h of list) names.add(h);
    await Promise.all(
      [...names].map(async (h) => {
        const ip = await resolve(h);
        if (ip !== undefined) out.set(h, ip);
        else
          this.opts.log?.warn(
            { host: h },
            "access security: HAG host does not resolve; it matches no client",
          );
      }),
    );
    return out;
  }

  /** Swaps in new rules and moves the input watches to the new groups. */
  private install(acf: CompiledAcf): void {
    for (const d of this.detach) d();
    this.detach = [];
    this.acf = acf;
    const source = this.opts.source;
    const byPv = new Map<string, { group: string; index: number }[]>();
    for (const g of acf.groups.values()) {
      g.inputs.forEach((pv, index) => {
        if (pv === undefined) return;
        const list = byPv.get(pv) ?? [];
        list.push({ group: g.name, index });
        byPv.set(pv, list);
      });
    }
    if (byPv.size === 0 || !source) return;
    const watching = new Map<string, () => void>();
    const set = (name: string, value: number | undefined) => {
      const changed = new Set<string>();
      for (const t of byPv.get(name) ?? []) {
        if (acf.group(t.group).setInput(t.index, value)) changed.add(t.group);
      }
      if (changed.size > 0 && this.acf === acf) this.emit(changed);
    };
    const attach = (pv: Pv) => {
      watching.get(pv.name)?.();
      const unsub = pv.subscribe((mask) => {
        if (mask & (DBE.VALUE | DBE.ALARM)) set(pv.name, inputValue(pv));
      });
      const unRemove = pv.onRemove(() => set(pv.name, undefined));
      watching.set(pv.name, () => {
        unsub();
        unRemove();
      });
      set(pv.name, inputValue(pv));
    };
    for (const name of byPv.keys()) {
      const pv = source.get(name);
      if (pv) attach(pv);
    }
    const offAdd = source.onAdd((pv) => {
      if (byPv.has(pv.name)) attach(pv);
    });
    this.detach.push(offAdd, () => {
      for (const off of watching.values()) off();
    });
  }

  private emit(groups: ReadonlySet<string> | null): void {
    for (const l of this.listeners) {
      try {
        l(groups);
      } catch (e) {
        this.opts.log?.error({ err: e }, "access security change listener failed");
      }
    }
  }

  status(): AccessStatus {
    const acf = this.acf;
    const inputs: AccessStatus["inputs"] = [];
    for (const g of acf?.groups.values() ?? []) {
      g.inputs.forEach((pv, i) => {
        if (pv === undefined) return;
        const bad = (g.bad & (1 << i)) !== 0;
        const input = String.fromCharCode(65 + i);
        inputs.push({ asg: g.name, input, pv, value: bad ? null : (g.values[i] as number) });
      });
    }
    return {
      enabled: this.enabled,
      file: this.opts.file ?? null,
      hostMode: this.hostMode,
      loadedAt: this.loadedAt?.toISOString() ?? null,
      groups: acf ? [...acf.groups.keys()] : [],
      warnings: acf?.config.warnings ?? [],
      lastError: this.lastError,
      inputs,
    };
  }

  /** Whether `asg` is defined by the file in force (a PV in an undefined group is in DEFAULT). */
  hasGroup(asg: string): boolean {
    return this.acf?.groups.has(asg) ?? false;
  }

  close(): void {
    this.closed = true;
    for (const d of this.detach) d();
    this.detach = [];
    this.listeners.clear();
  }
}
