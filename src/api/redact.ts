/**
 * What the REST layer sends about plugins: only the documented fields (nothing else the controller
 * holds can leak, a token say), JSON-safe values, and no secret — URL credentials and the
 * request's own token are replaced by `***` in every message.
 */
import type { PluginInfo, PluginPv, ValidationReport } from "./models.ts";

/** JSON cannot carry typed arrays or non-finite numbers; make PV values plain JSON. */
function jsonValue(v: unknown): unknown {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return Array.from(v as unknown as ArrayLike<number>, (x) => (Number.isFinite(x) ? x : null));
  }
  if (typeof v === "number" && !Number.isFinite(v)) return null;
  return v;
}

/** Job data and parameters go out as JSON: drop what JSON cannot carry instead of failing. */
export function jsonSafe(v: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(v ?? null, (_k, x: unknown) => jsonValue(x))) as unknown;
  } catch {
    return null;
  }
}

/** Copies only the documented fields of each PV. */
export function plainPvs(pvs: PluginPv[]): PluginPv[] {
  return pvs.map((p) => ({
    name: p.name,
    fullName: p.fullName,
    kind: p.kind,
    writable: p.writable,
    value: jsonValue(p.value),
    status: p.status,
    severity: p.severity,
  }));
}

/** Credentials typed into a URL (https://user:token@host) are never shown back. */
function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
}

/** The documented view of a plugin (whitelisted, JSON-safe). */
export function plainInfo(info: PluginInfo): PluginInfo {
  const out: PluginInfo = {
    name: info.name,
    kind: info.kind,
    status: info.status,
    message: info.message,
    prefix: info.prefix,
    git_url: redactUrl(info.git_url),
    parameters: jsonSafe(info.parameters ?? {}) as Record<string, unknown>,
    pvs: plainPvs(info.pvs),
    running: info.running,
  };
  if (info.mode !== undefined) out.mode = info.mode;
  if (info.cycleCount !== undefined) out.cycleCount = info.cycleCount;
  if (info.branch !== undefined) out.branch = info.branch;
  if (info.path !== undefined) out.path = info.path;
  if (info.quarantined !== undefined) out.quarantined = info.quarantined;
  return out;
}

/** Defence in depth: the request's token and URL credentials never appear in what we send. */
export function scrub(text: string, secret?: string): string {
  let t = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1***@");
  if (secret !== undefined && secret.length > 0) t = t.replaceAll(secret, "***");
  return t;
}

/** A validation report with every message scrubbed. */
export function scrubReport(v: ValidationReport, secret?: string): ValidationReport {
  const out: ValidationReport = {
    ok: v.ok,
    message: scrub(v.message, secret),
    steps: v.steps.map((s) => ({ step: s.step, ok: s.ok, message: scrub(s.message, secret) })),
  };
  if (v.failedStep !== undefined) out.failedStep = v.failedStep;
  return out;
}
