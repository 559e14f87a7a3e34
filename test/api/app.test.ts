import { beforeEach, describe, expect, test } from "bun:test";
import { type ApiResult, type ControllerPort, createApp } from "../../src/api/app.ts";
import type { AddPluginBody, JobResult, PluginInfo } from "../../src/api/models.ts";

/**
 * HTTP-layer tests: the controller here is a small in-memory implementation of the port (no CA,
 * no git involved), so these tests pin what the web layer itself decides — status codes, body
 * shapes, auth, limits — and that refused requests never reach the controller. The real
 * controller is exercised end to end in test/e2e.
 */
class MemoryController implements ControllerPort {
  calls: string[] = [];
  plugins = new Map<string, PluginInfo>();
  jobRunning = false;

  private info(kind: "task" | "job", body: AddPluginBody): PluginInfo {
    return {
      name: body.name,
      kind,
      status: kind === "task" ? "RUN" : "IDLE",
      message: "",
      prefix: `T:${body.name.toUpperCase()}`,
      git_url: body.git_url,
      parameters: body.parameters ?? {},
      running: kind === "task",
      pvs: [
        {
          name: "WAVE",
          fullName: `T:${body.name.toUpperCase()}:WAVE`,
          kind: "double",
          writable: false,
          value: new Float64Array([1, 2, Number.NaN]),
          status: 0,
          severity: 0,
        },
      ],
    };
  }

  async add(req: AddPluginBody & { kind: "task" | "job" }): Promise<ApiResult<PluginInfo>> {
    this.calls.push(`add ${req.kind} ${req.name}`);
    if (this.plugins.has(req.name)) return { ok: false, code: 409, message: "name taken" };
    if (req.git_url === "https://leaky.invalid/r.git") {
      // A careless message quoting the token and a credentialed URL: the API must scrub both.
      const msg = `clone of https://user:${req.pat}@leaky.invalid failed (token ${req.pat})`;
      return {
        ok: false,
        code: 422,
        message: msg,
        validation: {
          ok: false,
          failedStep: "clone",
          message: msg,
          steps: [{ step: "clone", ok: false, message: msg }],
        },
      };
    }
    if (req.git_url === "file:///job-repo" && req.kind === "task") {
      return {
        ok: false,
        code: 422,
        message: "inheritance: the module exports a JobBase subclass, expected a TaskBase",
        validation: {
          ok: false,
          failedStep: "inheritance",
          message: "expected a TaskBase",
          steps: [{ step: "inheritance", ok: false, message: "expected a TaskBase" }],
        },
      };
    }
    const info = this.info(req.kind, req);
    this.plugins.set(req.name, info);
    return { ok: true, message: "added", value: info };
  }
  async remove(kind: "task" | "job", name: string): Promise<ApiResult<unknown>> {
    this.calls.push(`remove ${kind} ${name}`);
    const p = this.plugins.get(name);
    if (p?.kind !== kind) return { ok: false, code: 404, message: `no ${kind} ${name}` };
    this.plugins.delete(name);
    return { ok: true, message: "removed", value: undefined };
  }
  list(kind: "task" | "job"): PluginInfo[] {
    return [...this.plugins.values()].filter((p) => p.kind === kind);
  }
  get(kind: "task" | "job", name: string): PluginInfo | undefined {
    const p = this.plugins.get(name);
    return p?.kind === kind ? p : undefined;
  }
  async runJob(name: string): Promise<ApiResult<JobResult>> {
    this.calls.push(`run ${name}`);
    if (this.get("job", name) === undefined) return { ok: false, code: 404, message: "no job" };
    if (this.jobRunning) return { ok: false, code: 409, message: "already running" };
    return {
      ok: true,
      message: "ran",
      value: { success: false, data: { n: 1 }, message: "sensor offline", timestamp: "2026-01-01" },
    };
  }
  async restart(name: string): Promise<ApiResult<PluginInfo>> {
    this.calls.push(`restart ${name}`);
    const p = this.get("task", name);
    return p === undefined
      ? { ok: false, code: 404, message: "no task" }
      : { ok: true, message: "restarted", value: p };
  }
}

const BASE = "http://localhost/api/v1";
let ctl: MemoryController;
let app: ReturnType<typeof createApp>;

function req(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const h: Record<string, string> = { ...headers };
  if (body !== undefined && h["content-type"] === undefined) h["content-type"] = "application/json";
  return app.handle(new Request(BASE + path, { method, body, headers: h }));
}

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

const good = { name: "mon-1", git_url: "file:///repo", parameters: { threshold: 80 } };

beforeEach(() => {
  ctl = new MemoryController();
  app = createApp({ controller: ctl, version: "9.9.9", apiToken: null });
});

describe("health", () => {
  test("reports version and counts of loaded tasks and jobs", async () => {
    await req("POST", "/tasks", JSON.stringify(good));
    await req("POST", "/jobs", JSON.stringify({ ...good, name: "j" }));
    const res = await req("GET", "/health");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      status: "ok",
      version: "9.9.9",
      tasks_count: 1,
      jobs_count: 1,
    });
  });
});

describe("add", () => {
  test("201 with the plugin; typed-array PV values become JSON arrays (NaN → null)", async () => {
    const res = await req("POST", "/tasks", JSON.stringify(good));
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.ok).toBe(true);
    const plugin = body.plugin as PluginInfo;
    expect(plugin.name).toBe("mon-1");
    expect(plugin.pvs[0]?.value).toEqual([1, 2, null]);
    expect(ctl.calls).toEqual(["add task mon-1"]);
  });

  test("409 when the name is taken, body keeps the shape", async () => {
    await req("POST", "/tasks", JSON.stringify(good));
    const res = await req("POST", "/tasks", JSON.stringify(good));
    expect(res.status).toBe(409);
    expect(await json(res)).toEqual({ ok: false, message: "name taken", detail: "name taken" });
  });

  test("422 from validation carries the report naming the failed step", async () => {
    const res = await req(
      "POST",
      "/tasks",
      JSON.stringify({ ...good, git_url: "file:///job-repo" }),
    );
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.ok).toBe(false);
    expect((body.validation as { failedStep: string }).failedStep).toBe("inheritance");
  });

  const refused: Array<[string, string, number, RegExp]> = [
    ["malformed JSON", '{"name": "x", ', 400, /malformed JSON/],
    ["JSON null", "null", 422, /body/],
    ["JSON array", "[]", 422, /body/],
    ["missing git_url", JSON.stringify({ name: "x" }), 422, /git_url/],
    ["missing name", JSON.stringify({ git_url: "file:///r" }), 422, /name/],
    ["name with a space", JSON.stringify({ ...good, name: "a b" }), 422, /body\.name/],
    ["name with a slash", JSON.stringify({ ...good, name: "../x" }), 422, /body\.name/],
    ["name too long", JSON.stringify({ ...good, name: "a".repeat(129) }), 422, /body\.name/],
    ["empty name", JSON.stringify({ ...good, name: "" }), 422, /body\.name/],
    ["git_url a number", JSON.stringify({ ...good, git_url: 5 }), 422, /body\.git_url/],
    ["empty git_url", JSON.stringify({ ...good, git_url: "" }), 422, /body\.git_url/],
    ["parameters an array", JSON.stringify({ ...good, parameters: [1] }), 422, /parameters/],
    ["auto_start a string", JSON.stringify({ ...good, auto_start: "yes" }), 422, /auto_start/],
    ["unknown field (typo)", JSON.stringify({ ...good, brnach: "main" }), 422, /brnach.*unknown/],
    ["bad pat_env", JSON.stringify({ ...good, pat_env: "A-B; rm" }), 422, /pat_env/],
  ];
  for (const [what, body, status, message] of refused) {
    test(`refuses ${what} with ${status} and never calls the controller`, async () => {
      const res = await req("POST", "/tasks", body);
      expect(res.status).toBe(status);
      const out = await json(res);
      expect(out.ok).toBe(false);
      expect(String(out.message)).toMatch(message);
      expect(ctl.calls).toEqual([]);
    });
  }

  test("parameters nested deeper than 32 levels are refused; 32 are fine", async () => {
    const nest = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const deep = `{"name":"deep","git_url":"file:///r","parameters":{"x":${nest(5000)}}}`;
    const res = await req("POST", "/tasks", deep);
    expect(res.status).toBe(422);
    expect(String((await json(res)).message)).toContain("deeper than 32");
    expect(ctl.calls).toEqual([]);
    const edge = `{"name":"edge","git_url":"file:///r","parameters":{"x":${nest(32)}}}`;
    expect((await req("POST", "/tasks", edge)).status).toBe(422);
    const ok = `{"name":"ok","git_url":"file:///r","parameters":{"x":${nest(31)}}}`;
    expect((await req("POST", "/tasks", ok)).status).toBe(201);
  });

  test("a PAT of the wrong type is not echoed in the error", async () => {
    const secret = "ghp_SECRET1234567890";
    const res = await req(
      "POST",
      "/tasks",
      JSON.stringify({ name: 5, git_url: "file:///r", pat: [secret] }),
    );
    expect(res.status).toBe(422);
    expect(await res.text()).not.toContain(secret);
  });

  test("a PAT quoted by the controller is scrubbed from the error", async () => {
    const pat = "ghp_LEAK0123456789";
    const res = await req(
      "POST",
      "/tasks",
      JSON.stringify({ name: "leak", git_url: "https://leaky.invalid/r.git", pat }),
    );
    expect(res.status).toBe(422);
    const text = await res.text();
    expect(text).not.toContain(pat);
    expect(text).toContain("https://***@leaky.invalid");
  });

  test("credentials in a git_url are not shown in listings", async () => {
    await req(
      "POST",
      "/tasks",
      JSON.stringify({ ...good, git_url: "https://me:tok123@h.invalid/r" }),
    );
    const text = await (await req("GET", "/tasks")).text();
    expect(text).not.toContain("tok123");
    expect(text).toContain("https://***@h.invalid/r");
  });

  test("refuses a non-JSON content type with 415", async () => {
    const res = await req("POST", "/tasks", JSON.stringify(good), { "content-type": "text/plain" });
    expect(res.status).toBe(415);
    expect((await json(res)).ok).toBe(false);
    expect(ctl.calls).toEqual([]);
  });

  test("refuses a huge body with 413, with or without Content-Length", async () => {
    const huge = JSON.stringify({ ...good, parameters: { x: "y".repeat(200_000) } });
    const declared = await req("POST", "/tasks", huge, {
      "content-length": String(huge.length),
    });
    expect(declared.status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new TextEncoder().encode(huge.slice(0, 10_000)));
        c.close();
      },
    });
    const chunked = await app.handle(
      new Request(`${BASE}/tasks`, {
        method: "POST",
        body: stream,
        headers: { "content-type": "application/json" },
      }),
    );
    expect(chunked.status).toBe(413);
    expect((await json(chunked)).ok).toBe(false);
    expect(ctl.calls).toEqual([]);
  });
});

describe("per-plugin routes", () => {
  test("GET one, its PVs, DELETE, then 404", async () => {
    await req("POST", "/tasks", JSON.stringify(good));
    const one = await req("GET", "/tasks/mon-1");
    expect(one.status).toBe(200);
    expect((await json(one)).name).toBe("mon-1");
    const pvs = await json(await req("GET", "/tasks/mon-1/pvs"));
    expect(pvs.count).toBe(1);
    expect((pvs.pvs as Array<{ value: unknown }>)[0]?.value).toEqual([1, 2, null]);
    const del = await req("DELETE", "/tasks/mon-1");
    expect(del.status).toBe(200);
    expect((await json(del)).ok).toBe(true);
    expect((await req("GET", "/tasks/mon-1")).status).toBe(404);
    expect((await req("GET", "/tasks/mon-1/pvs")).status).toBe(404);
    expect((await req("DELETE", "/tasks/mon-1")).status).toBe(404);
  });

  test("a task is not visible as a job and the reverse", async () => {
    await req("POST", "/tasks", JSON.stringify(good));
    expect((await req("GET", "/jobs/mon-1")).status).toBe(404);
    expect((await req("DELETE", "/jobs/mon-1")).status).toBe(404);
    expect((await req("POST", "/jobs/mon-1/run")).status).toBe(404);
    const list = await json(await req("GET", "/jobs"));
    expect(list).toEqual({ plugins: [], count: 0 });
  });

  test("bad names in the path are refused before the controller", async () => {
    for (const p of ["/tasks/a%20b", "/tasks/a.b", `/jobs/${"x".repeat(200)}/run`]) {
      const res = await req(p.endsWith("/run") ? "POST" : "GET", p);
      expect(res.status).toBe(422);
      expect((await json(res)).ok).toBe(false);
    }
    expect(ctl.calls).toEqual([]);
  });

  test("run: ok mirrors the job's success; 409 while running", async () => {
    await req("POST", "/jobs", JSON.stringify({ ...good, name: "diag" }));
    const res = await req("POST", "/jobs/diag/run");
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      ok: false,
      message: "sensor offline",
      result: {
        success: false,
        data: { n: 1 },
        message: "sensor offline",
        timestamp: "2026-01-01",
      },
    });
    ctl.jobRunning = true;
    expect((await req("POST", "/jobs/diag/run")).status).toBe(409);
  });

  test("restart of an unknown task is 404, of a known one 200", async () => {
    expect((await req("POST", "/tasks/nope/restart")).status).toBe(404);
    await req("POST", "/tasks", JSON.stringify(good));
    const res = await req("POST", "/tasks/mon-1/restart");
    expect(res.status).toBe(200);
    expect((await json(res)).ok).toBe(true);
  });

  test("unknown endpoints answer 404 in the same shape", async () => {
    const res = await req("GET", "/nope");
    expect(res.status).toBe(404);
    expect((await json(res)).ok).toBe(false);
  });
});

describe("bearer token", () => {
  const token = "s3cret-token";
  beforeEach(() => {
    app = createApp({ controller: ctl, version: "1", apiToken: token });
  });

  test("mutating requests without or with a wrong token get 401 and change nothing", async () => {
    for (const auth of [
      undefined,
      "Bearer wrong",
      `Basic ${token}`,
      "Bearer",
      `Bearer ${token}x`,
    ]) {
      const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
      const res = await req("POST", "/tasks", JSON.stringify(good), headers);
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
      expect((await json(res)).ok).toBe(false);
      expect((await req("DELETE", "/tasks/mon-1", undefined, headers)).status).toBe(401);
      expect((await req("POST", "/jobs/x/run", undefined, headers)).status).toBe(401);
    }
    expect(ctl.calls).toEqual([]);
  });

  test("the right token is accepted; reads need none", async () => {
    const res = await req("POST", "/tasks", JSON.stringify(good), {
      authorization: `Bearer ${token}`,
    });
    expect(res.status).toBe(201);
    expect((await req("GET", "/tasks")).status).toBe(200);
    expect((await req("GET", "/health")).status).toBe(200);
  });
});

describe("OpenAPI", () => {
  test("the document lists every route with its schemas, and the docs page is served", async () => {
    const res = await req("GET", "/openapi.json");
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, Record<string, unknown>> };
    for (const p of [
      "/api/v1/health",
      "/api/v1/tasks",
      "/api/v1/tasks/{name}",
      "/api/v1/tasks/{name}/pvs",
      "/api/v1/tasks/{name}/restart",
      "/api/v1/jobs",
      "/api/v1/jobs/{name}",
      "/api/v1/jobs/{name}/pvs",
      "/api/v1/jobs/{name}/run",
      "/api/v1/jobs/{name}/restart",
    ]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    expect(JSON.stringify(doc.paths["/api/v1/tasks"]?.post)).toContain("git_url");
    const docs = await req("GET", "/docs");
    expect(docs.status).toBe(200);
    expect(docs.headers.get("content-type")).toContain("text/html");
  });
});
