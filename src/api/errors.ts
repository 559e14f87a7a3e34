/**
 * Error mapping: every failure leaves as `{ ok: false, message }` with the right status. Our own
 * ApiError carries its status (413, 415, 400 from the body parser); schema violations are 422 with
 * one readable line per field (never the value itself); unknown routes 404; anything else 500
 * without details (they go to the log).
 */
import { Elysia, ValidationError } from "elysia";
import type { Logger } from "pino";

/** Our own error with an HTTP status; {@link errorMapping} turns it into the `{ok:false}` body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** One readable line per schema violation: where, and what was expected. Never the value itself. */
function describeValidation(error: ValidationError): string {
  const where = error.type === "params" ? "path" : error.type;
  const lines: string[] = [];
  for (const e of error.all) {
    const path = "path" in e && typeof e.path === "string" ? e.path : "";
    const field = path.replace(/^\//, "").replaceAll("/", ".");
    let what = "message" in e && typeof e.message === "string" ? e.message : "invalid";
    const schema = "schema" in e ? (e.schema as { pattern?: unknown }) : undefined;
    if (schema?.pattern !== undefined && /pattern/i.test(what)) {
      what = `expected a string matching ${String(schema.pattern)}`;
    }
    if (/unexpected property/i.test(what) || /additional/i.test(what)) {
      what = "unknown field";
    }
    lines.push(field === "" ? `${where}: ${what}` : `${where}.${field}: ${what}`);
    if (lines.length >= 10) break;
  }
  if (lines.length === 0) lines.push(`${where}: invalid`);
  return [...new Set(lines)].join("; ");
}

/** The ApiError behind `error`: itself, or the cause Elysia wrapped it in (a parser's throw). */
function ownError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof Error && error.cause instanceof ApiError) return error.cause;
  return null;
}

/** The error-mapping plugin (global: it answers for every route of the app that uses it). */
export function errorMapping(log: Logger | undefined) {
  return new Elysia().error({ ApiError }).onError({ as: "global" }, ({ code, error, set }) => {
    const own = ownError(error);
    if (own !== null) {
      set.status = own.status;
      return { ok: false, message: own.message };
    }
    if (code === "VALIDATION" && error instanceof ValidationError) {
      if (error.type === "response") {
        log?.error({ err: describeValidation(error) }, "response failed its own schema");
        set.status = 500;
        return { ok: false, message: "internal error: response did not match its schema" };
      }
      // 422 like the Python iocmng (FastAPI) for well-formed JSON of the wrong shape.
      set.status = 422;
      return { ok: false, message: describeValidation(error) };
    }
    if (code === "NOT_FOUND") {
      set.status = 404;
      return { ok: false, message: "no such endpoint" };
    }
    if (code === "PARSE") {
      set.status = 400;
      return { ok: false, message: "malformed request body" };
    }
    log?.error({ err: error }, "request failed");
    set.status = 500;
    return { ok: false, message: "internal error" };
  });
}
