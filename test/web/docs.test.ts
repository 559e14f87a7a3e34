/**
 * The docs page needs nothing from outside: its viewer script is served by the app itself, and
 * openapi.json is complete (the add operations carry their request body).
 */
import { expect, test } from "bun:test";
import { Elysia } from "elysia";
import { createApp } from "../../src/api/app.ts";
import { docsAssets, OFFLINE_SCALAR, SCALAR_PATH } from "../../src/web/docs.ts";

// The controller is never called by these routes; an empty port keeps the test about the docs.
const app = new Elysia().use(docsAssets()).use(
  createApp({
    controller: {} as never,
    version: "test",
    apiToken: null,
    docsViewer: OFFLINE_SCALAR,
  }),
);
const get = (path: string, headers: Record<string, string> = {}) =>
  app.handle(new Request(`http://localhost${path}`, { headers }));

interface Schema {
  required?: string[];
  properties?: Record<string, unknown>;
}
type Operation = { requestBody?: { content?: Record<string, { schema?: Schema }> } };

test("both add operations document their JSON body with name, git_url and path", async () => {
  const spec = (await (await get("/api/v1/openapi.json")).json()) as {
    paths: Record<string, Record<string, Operation>>;
  };
  for (const path of ["/api/v1/tasks", "/api/v1/jobs"]) {
    const schema = spec.paths[path]?.post?.requestBody?.content?.["application/json"]?.schema;
    expect(schema).toBeDefined();
    expect(Object.keys(schema?.properties ?? {})).toEqual(
      expect.arrayContaining(["name", "git_url", "path", "branch", "parameters"]),
    );
    expect(schema?.required).toEqual(expect.arrayContaining(["name", "git_url"]));
  }
});

test("the docs page loads its viewer from this server only", async () => {
  const html = await (await get("/api/v1/docs")).text();
  const srcs = [...html.matchAll(/<script[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]);
  expect(srcs).toEqual([SCALAR_PATH]);
  expect(html).not.toMatch(/<link[^>]+href="https?:/);
  expect(html).toContain('"withDefaultFonts":false');
  const js = await get(SCALAR_PATH, { "accept-encoding": "gzip" });
  expect(js.status).toBe(200);
  expect(js.headers.get("content-type")).toContain("javascript");
  expect(js.headers.get("content-encoding")).toBe("gzip");
  const body = Bun.gunzipSync(new Uint8Array(await js.arrayBuffer()));
  expect(body.byteLength).toBeGreaterThan(1_000_000);
  const etag = js.headers.get("etag") ?? "";
  expect((await get(SCALAR_PATH, { "if-none-match": etag })).status).toBe(304);
});
