/**
 * Request bodies: refused over the limit before they are read (Content-Length) and while they are
 * read (chunked bodies), JSON only (415 otherwise), malformed JSON a 400 — all in our own error
 * shape through {@link ApiError}.
 */
import { Elysia } from "elysia";
import { errorMessage } from "../common/errors.ts";
import { ApiError } from "./errors.ts";

/** 64 KiB: an add request is a few hundred bytes; parameters of a plugin are small by nature. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** Reads a request body as text, refusing more than `limit` bytes even without Content-Length. */
export async function readLimited(request: Request, limit: number): Promise<string> {
  const body = request.body;
  if (body === null) return "";
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      throw new ApiError(413, `request body larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return new TextDecoder("utf-8", { fatal: false }).decode(Buffer.concat(chunks));
}

/** The JSON value of a body's text (undefined when empty); 415 for another type, 400 malformed. */
export function parseJsonBody(text: string, contentType: string | undefined): unknown {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (text.trim() === "") return undefined;
  if (type !== "application/json" && !type.endsWith("+json")) {
    throw new ApiError(415, `expected Content-Type application/json, got '${type || "none"}'`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError(400, `malformed JSON body: ${errorMessage(e).slice(0, 200)}`);
  }
}

/** The body plugin: the size check on arrival, then our own bounded JSON parser. */
export function jsonBody(limit: number) {
  return new Elysia()
    .onRequest(({ request, set }) => {
      const len = request.headers.get("content-length");
      if (len !== null && Number(len) > limit) {
        set.status = 413;
        return { ok: false, message: `request body larger than ${limit} bytes` };
      }
    })
    .onParse({ as: "global" }, async ({ request, contentType }) =>
      parseJsonBody(await readLimited(request, limit), contentType),
    );
}
