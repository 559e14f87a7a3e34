import { errorMessage } from "../../common/errors.ts";
import { stringFlag } from "../args.ts";
import type { Command } from "../command.ts";
import { CliError, EXIT, UsageError } from "../errors.ts";

/** Where `iocmng health` looks when no --url is given: the local server on IOCMNG_PORT. */
export function defaultHealthUrl(env: Record<string, string | undefined>): string {
  const port = env.IOCMNG_PORT && env.IOCMNG_PORT !== "0" ? env.IOCMNG_PORT : "8080";
  return `http://127.0.0.1:${port}/api/v1/health`;
}

/**
 * `iocmng health`: the container HEALTHCHECK (scratch images have no curl). Exit 0 only when the
 * server answers 200 with `status: "healthy"`.
 */
export const healthCommand: Command = {
  name: "health",
  summary: "check that a running server answers its health endpoint (for HEALTHCHECK)",
  usage: "iocmng health [--url URL] [--timeout SECONDS]",
  details: [
    "GETs the health endpoint and exits 0 when it answers 200 with status 'healthy', 1 otherwise.",
    "The default URL is http://127.0.0.1:$IOCMNG_PORT/api/v1/health (port 8080 when unset).",
  ].join("\n"),
  flags: { url: { type: "string" }, timeout: { type: "string" } },
  maxPositionals: 0,
  async run(args, ctx) {
    const url = stringFlag(args, "url") ?? defaultHealthUrl(ctx.env);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`'${url}' is not a URL`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw new UsageError(`the health URL must be http:// or https:// (got '${parsed.protocol}')`);
    }
    const timeoutText = stringFlag(args, "timeout") ?? "5";
    const timeout = Number(timeoutText);
    if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 600) {
      throw new UsageError(
        `--timeout must be a number of seconds in (0, 600] (got '${timeoutText}')`,
      );
    }
    let res: Response;
    try {
      res = await fetch(parsed, { signal: AbortSignal.timeout(timeout * 1000) });
    } catch (e) {
      const why = e instanceof Error && e.name === "TimeoutError" ? `no answer in ${timeout} s` : e;
      throw new CliError(`${parsed.href} unreachable: ${errorMessage(why)}`);
    }
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const status =
      typeof body === "object" && body !== null && "status" in body ? body.status : undefined;
    if (res.status !== 200 || status !== "healthy") {
      throw new CliError(`unhealthy: HTTP ${res.status}, status ${JSON.stringify(status ?? null)}`);
    }
    ctx.out(text.length <= 1000 ? text : `${text.slice(0, 1000)}…`);
    return EXIT.ok;
  },
};
