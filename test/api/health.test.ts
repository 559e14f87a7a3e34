import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/api/app.ts";

describe("GET /api/v1/health", () => {
  test("answers 200 with the server version", async () => {
    const app = createApp({ version: "9.9.9" });
    const res = await app.handle(new Request("http://localhost/api/v1/health"));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; version: string };
    expect(body.status).toBe("healthy");
    expect(body.version).toBe("9.9.9");
  });
});
