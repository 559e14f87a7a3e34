/**
 * REST surface of access security and the audit trail, as an Elysia plugin the API app mounts
 * under its `/api/v1` prefix:
 *
 *   GET  /access                      the file in force, groups, warnings, last error, INP values
 *   POST /access/reload               re-read the file (422 with line and column if it is malformed;
 *                                     the rules in force stay)
 *   GET  /tasks/:name/audit?limit=N   the plugin's last N audit entries, oldest first (also /jobs)
 *
 * and `auditRequest`, which turns one finished mutating request into an audit entry (who: the
 * caller as the API knows it; what: the plugin and the operation; result: from the status).
 */
import { Elysia, t } from "elysia";
import type { MutationRecord } from "../common/mutation-record.ts";
import type { AuditLog, AuditResult } from "./audit.ts";
import type { AccessSecurity } from "./security.ts";

export interface AccessRouteDeps {
  security: AccessSecurity;
  audit: AuditLog;
}

/** Most entries one audit query returns. */
export const MAX_AUDIT_QUERY = 1000;

const AuditEntrySchema = t.Object({
  seq: t.Integer(),
  time: t.String(),
  plugin: t.String(),
  action: t.String(),
  pv: t.Union([t.String(), t.Null()]),
  via: t.String(),
  user: t.String(),
  host: t.String(),
  old: t.Union([t.String(), t.Null()]),
  new: t.Union([t.String(), t.Null()]),
  result: t.String(),
  reason: t.Union([t.String(), t.Null()]),
});

const AuditQuery = t.Object({
  limit: t.Optional(
    t.Numeric({
      minimum: 0,
      maximum: MAX_AUDIT_QUERY,
      description: "Entries wanted (default 100)",
    }),
  ),
});

export function accessRoutes(deps: AccessRouteDeps) {
  const { security, audit } = deps;
  const auditRoute = (plural: "tasks" | "jobs") =>
    new Elysia({ name: `iocmng-audit-${plural}` }).get(
      `/${plural}/:name/audit`,
      ({ params, query }) => {
        const entries = audit.query(params.name, query.limit ?? 100);
        return { entries, count: entries.length };
      },
      {
        params: t.Object({ name: t.String({ maxLength: 128 }) }),
        query: AuditQuery,
        response: t.Object({ entries: t.Array(AuditEntrySchema), count: t.Integer() }),
        detail: {
          tags: [plural],
          summary: "Last audit entries of the plugin (PV writes and REST changes), oldest first",
        },
      },
    );
  return new Elysia({ name: "iocmng-access" })
    .get("/access", () => security.status(), {
      detail: { tags: ["access"], summary: "Access security state: file, groups, inputs, errors" },
    })
    .post(
      "/access/reload",
      async ({ set }) => {
        const r = await security.reload();
        if (r.ok) {
          return {
            ok: true as const,
            message: "access security file reloaded",
            warnings: r.warnings,
          };
        }
        set.status = security.enabled ? 422 : 409;
        return { ok: false as const, message: r.error, line: r.line, column: r.column };
      },
      {
        detail: {
          tags: ["access"],
          security: [{ bearer: [] }],
          summary: "Re-read the access security file",
          description:
            "Connected CA clients get their new access rights at once. 422 (with line and column) for a malformed file: the rules in force stay. 409 when no file is configured.",
        },
      },
    )
    .use(auditRoute("tasks"))
    .use(auditRoute("jobs"));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const PLUGIN_PATH = /^\/api\/v1\/(tasks|jobs)(?:\/([^/]+))?(?:\/([^/]+))?\/?$/;

/**
 * Records one finished mutating REST request: `caller` is who the API authenticated ("token" or
 * "anonymous"), `host` the peer address. Requests that are not about plugins are recorded under
 * the server ("").
 */
export function auditRequest(audit: AuditLog, req: MutationRecord): void {
  const m = PLUGIN_PATH.exec(req.path);
  let plugin = "";
  let action = `${req.method} ${req.path}`;
  if (m) {
    const [, plural, name, op] = m;
    const bodyName =
      req.body !== null && typeof req.body === "object"
        ? (req.body as { name?: unknown }).name
        : undefined;
    plugin = safeDecode(name ?? (typeof bodyName === "string" ? bodyName : ""));
    const kind = plural === "tasks" ? "task" : "job";
    if (op) action = `${kind} ${op}`;
    else if (req.method === "POST") action = `${kind} add`;
    else if (req.method === "DELETE") action = `${kind} remove`;
  }
  const result: AuditResult =
    req.status < 400 ? "ok" : req.status === 401 || req.status === 403 ? "denied" : "failed";
  audit.record({
    plugin,
    action,
    via: "rest",
    user: req.caller,
    host: req.host,
    result,
    reason: result === "ok" ? undefined : `HTTP ${req.status}`,
  });
}
