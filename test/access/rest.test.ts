import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Elysia } from "elysia";
import { AuditLog } from "../../src/access/audit.ts";
import { accessRoutes, auditRequest } from "../../src/access/rest.ts";
import { AccessSecurity } from "../../src/access/security.ts";

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "iocmng-acf-rest-"));
  file = join(dir, "rules.acf");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function call(app: { handle(r: Request): Promise<Response> }, method: string, path: string) {
  const res = await app.handle(new Request(`http://localhost/api/v1${path}`, { method }));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("access REST routes", () => {
  test("status, reload (good and malformed), per-plugin audit", async () => {
    writeFileSync(file, "ASG(DEFAULT) { RULE(1, READ) }\n");
    const security = await AccessSecurity.open({ file });
    const audit = new AuditLog();
    const app = new Elysia({ prefix: "/api/v1" }).use(accessRoutes({ security, audit }));

    const st = await call(app, "GET", "/access");
    expect(st.status).toBe(200);
    expect(st.body).toMatchObject({ enabled: true, file, groups: ["DEFAULT"], lastError: null });

    writeFileSync(file, "ASG(DEFAULT) {\n  RULE(1, READ) { UAG(x) }\n}\n");
    const bad = await call(app, "POST", "/access/reload");
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ ok: false, line: 2, column: 23 });
    expect(String(bad.body.message)).toContain("no user access group named 'x'");
    expect((await call(app, "GET", "/access")).body.lastError).toMatchObject({
      line: 2,
      column: 23,
    });

    writeFileSync(file, "ASG(DEFAULT) { RULE(1, WRITE) }\nASG(X)\n");
    const good = await call(app, "POST", "/access/reload");
    expect(good).toMatchObject({ status: 200, body: { ok: true } });
    expect((await call(app, "GET", "/access")).body.groups).toEqual(["DEFAULT", "X"]);

    for (let i = 0; i < 5; i++) {
      audit.record({
        plugin: "mon",
        pv: "MON:SP",
        via: "ca",
        user: "op",
        host: "h",
        old: i,
        new: i + 1,
        result: "ok",
      });
    }
    const q = await call(app, "GET", "/tasks/mon/audit?limit=2");
    expect(q.status).toBe(200);
    expect(q.body.count).toBe(2);
    expect((q.body.entries as { new: string }[]).map((e) => e.new)).toEqual(["4", "5"]);
    expect((await call(app, "GET", "/jobs/none/audit")).body).toEqual({ entries: [], count: 0 });
    expect((await call(app, "GET", "/tasks/mon/audit?limit=100000")).status).toBe(422);
    security.close();
  });

  test("without a file, reload answers 409", async () => {
    const security = await AccessSecurity.open();
    const app = new Elysia({ prefix: "/api/v1" }).use(
      accessRoutes({ security, audit: new AuditLog() }),
    );
    expect((await call(app, "POST", "/access/reload")).status).toBe(409);
  });

  test("auditRequest names the plugin, the operation, the caller and the result", () => {
    const audit = new AuditLog();
    const req = { caller: "token", host: "10.0.0.7" };
    auditRequest(audit, {
      ...req,
      method: "POST",
      path: "/api/v1/tasks",
      status: 201,
      body: { name: "mon" },
    });
    auditRequest(audit, { ...req, method: "POST", path: "/api/v1/tasks/mon/restart", status: 200 });
    auditRequest(audit, { ...req, method: "DELETE", path: "/api/v1/tasks/mon", status: 409 });
    auditRequest(audit, {
      ...req,
      caller: "anonymous",
      method: "DELETE",
      path: "/api/v1/tasks/mon",
      status: 401,
    });
    auditRequest(audit, { ...req, method: "POST", path: "/api/v1/access/reload", status: 200 });
    auditRequest(audit, { ...req, method: "POST", path: "/api/v1/jobs/%E0%A4%A/run", status: 200 });
    expect(audit.query("mon").map((e) => [e.action, e.user, e.host, e.result, e.via])).toEqual([
      ["task add", "token", "10.0.0.7", "ok", "rest"],
      ["task restart", "token", "10.0.0.7", "ok", "rest"],
      ["task remove", "token", "10.0.0.7", "failed", "rest"],
      ["task remove", "anonymous", "10.0.0.7", "denied", "rest"],
    ]);
    expect(audit.query("")[0]?.action).toBe("POST /api/v1/access/reload");
    expect(audit.query("%E0%A4%A")[0]?.action).toBe("job run");
  });
});
