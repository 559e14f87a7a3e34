/**
 * The HTTP plugins one by one, each on a bare Elysia app with a test route: what each decides on
 * its own (the whole app is pinned in app.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { Elysia, t } from "elysia";
import pino from "pino";
import { bearerAuth, tokenMatches } from "../../src/api/auth.ts";
import { jsonBody, parseJsonBody, readLimited } from "../../src/api/body.ts";
import { ApiError, errorMapping } from "../../src/api/errors.ts";
import { requestLog } from "../../src/api/logging.ts";
import { jsonSafe, plainInfo, scrub, scrubReport } from "../../src/api/redact.ts";

const URL_BASE = "http://localhost";

async function call(
  app: { handle(r: Request): Promise<Response> },
  init: RequestInit & { path?: string } = {},
) {
  const res = await app.handle(new Request(URL_BASE + (init.path ?? "/x"), init));
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, headers: res.headers, body };
}

describe("auth", () => {
  let reached = 0;
  const app = new Elysia()
    .use(bearerAuth("s3cret"))
    .get("/x", () => ({ ok: true }))
    .post("/x", () => {
      reached++;
      return { ok: true };
    });

  test("a mutating request needs the token; 401 names the scheme and the route is not reached", async () => {
    for (const authorization of [undefined, "Bearer nope", "Basic s3cret", "Bearer", "s3cret"]) {
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const r = await call(app, { method: "POST", headers });
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe('Bearer realm="iocmng"');
      expect(r.body).toEqual({
        ok: false,
        message: "missing or wrong bearer token (Authorization: Bearer <token>)",
      });
    }
    expect(reached).toBe(0);
    const ok = await call(app, { method: "POST", headers: { authorization: "bearer  s3cret " } });
    expect(ok.status).toBe(200);
    expect(reached).toBe(1);
  });

  test("reads need no token; without a server token nothing is checked", async () => {
    expect((await call(app)).status).toBe(200);
    const open = new Elysia().use(bearerAuth(null)).post("/x", () => ({ ok: true }));
    expect((await call(open, { method: "POST" })).status).toBe(200);
  });

  test("tokenMatches compares whole tokens only", () => {
    expect(tokenMatches("Bearer abc", "abc")).toBe(true);
    expect(tokenMatches("Bearer abcd", "abc")).toBe(false);
    expect(tokenMatches("Bearer ab", "abc")).toBe(false);
    expect(tokenMatches(null, "abc")).toBe(false);
    expect(tokenMatches("Bearer a b", "a b")).toBe(false);
  });
});

describe("body", () => {
  const app = new Elysia()
    .use(jsonBody(100))
    .use(errorMapping(undefined))
    .post("/x", ({ body }) => ({ ok: true, got: body }));

  test("JSON within the limit reaches the route", async () => {
    const r = await call(app, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8" },
      body: '{"a":1}',
    });
    expect(r).toMatchObject({ status: 200, body: { ok: true, got: { a: 1 } } });
  });

  test("over the limit: 413 from Content-Length, and from the stream without it", async () => {
    const big = JSON.stringify({ a: "x".repeat(200) });
    const withLength = await call(app, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(big.length) },
      body: big,
    });
    expect(withLength.status).toBe(413);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new TextEncoder().encode("x".repeat(50)));
        c.close();
      },
    });
    await expect(
      readLimited(new Request(URL_BASE, { method: "POST", body: stream }), 100),
    ).rejects.toThrow("request body larger than 100 bytes");
  });

  test("another content type is 415, malformed JSON 400, both in our shape", async () => {
    const text = await call(app, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "{}",
    });
    expect(text).toMatchObject({ status: 415, body: { ok: false } });
    expect(String((text.body as { message: string }).message)).toContain("text/plain");
    const bad = await call(app, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    expect(bad.status).toBe(400);
    expect(String((bad.body as { message: string }).message)).toContain("malformed JSON body");
  });

  test("parseJsonBody: empty is no body; +json types are JSON", () => {
    expect(parseJsonBody("  ", "text/plain")).toBeUndefined();
    expect(parseJsonBody("[1]", "application/merge-patch+json")).toEqual([1]);
    expect(() => parseJsonBody("1", undefined)).toThrow("got 'none'");
  });
});

describe("error mapping", () => {
  const app = new Elysia()
    .use(errorMapping(pino({ level: "silent" })))
    .get("/own", () => {
      throw new ApiError(409, "mine");
    })
    .get("/boom", () => {
      throw new Error("secret detail");
    })
    .post("/typed", ({ body }) => body, { body: t.Object({ n: t.Number() }) });

  test("our ApiError keeps its status and message", async () => {
    expect(await call(app, { path: "/own" })).toMatchObject({
      status: 409,
      body: { ok: false, message: "mine" },
    });
  });

  test("an unexpected error is 500 without its details; unknown routes 404", async () => {
    expect(await call(app, { path: "/boom" })).toEqual(
      expect.objectContaining({ status: 500, body: { ok: false, message: "internal error" } }),
    );
    expect(await call(app, { path: "/nope" })).toMatchObject({
      status: 404,
      body: { ok: false, message: "no such endpoint" },
    });
  });

  test("a schema violation is 422 naming the field, not the value", async () => {
    const r = await call(app, {
      path: "/typed",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"n":"hidden-value"}',
    });
    expect(r.status).toBe(422);
    expect(String((r.body as { message: string }).message)).toContain("body.n");
    expect(JSON.stringify(r.body)).not.toContain("hidden-value");
  });
});

describe("request log", () => {
  test("one line per request with method, path, status; mutating at info, reads at debug", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const app = new Elysia()
      .use(requestLog(log))
      .get("/x", () => "r")
      .post("/x", () => "w");
    await call(app);
    await call(app, { method: "POST", body: "token=do-not-log" });
    // onAfterResponse runs after the response is handed over.
    for (let i = 0; i < 50 && lines.length < 2; i++) await Bun.sleep(10);
    expect(lines.map((l) => [l.level, l.method, l.path, l.status])).toEqual([
      [20, "GET", "/x", 200],
      [30, "POST", "/x", 200],
    ]);
    expect(typeof lines[0]?.ms).toBe("number");
    expect(JSON.stringify(lines)).not.toContain("do-not-log");
  });
});

describe("redaction", () => {
  test("URL credentials and the request's token are replaced everywhere", () => {
    expect(scrub("clone of https://u:ghp_9@h/r failed, token ghp_9", "ghp_9")).toBe(
      "clone of https://***@h/r failed, token ***",
    );
    const r = scrubReport(
      {
        ok: false,
        failedStep: "clone",
        message: "x ghp_9",
        steps: [{ step: "clone", ok: false, message: "ghp_9" }],
      },
      "ghp_9",
    );
    expect(JSON.stringify(r)).not.toContain("ghp_9");
    expect(r.failedStep).toBe("clone");
  });

  test("a plugin view keeps the documented fields only, JSON-safe", () => {
    const info = plainInfo({
      name: "a",
      kind: "task",
      status: "RUN",
      message: "",
      prefix: "P:A",
      git_url: "https://user:pw@h/r.git",
      parameters: { big: 1n as unknown as number },
      pvs: [
        {
          name: "W",
          fullName: "P:A:W",
          kind: "double",
          writable: false,
          value: new Float64Array([1, Number.POSITIVE_INFINITY]),
          status: 0,
          severity: 0,
        },
      ],
      running: true,
      pat: "leak",
    } as never);
    expect(info.git_url).toBe("https://***@h/r.git");
    expect(info.pvs[0]?.value).toEqual([1, null]);
    expect(info.parameters).toBeNull();
    expect(JSON.stringify(info)).not.toContain("leak");
    expect(jsonSafe({ x: Number.NaN })).toEqual({ x: null });
  });
});
