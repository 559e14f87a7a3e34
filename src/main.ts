#!/usr/bin/env bun
import { createApp } from "./api/app.ts";
import { createRootLogger } from "./log.ts";
import { VERSION } from "./version.ts";

/** Entry point: the only place where the parts are composed. */
async function main(argv: string[]): Promise<number> {
  const cmd = argv[0] ?? "serve";
  if (cmd === "--version" || cmd === "-v") {
    console.log(VERSION);
    return 0;
  }
  if (cmd !== "serve") {
    console.error(`iocmng: unknown command '${cmd}' (try --help)`);
    return 2;
  }
  const log = createRootLogger();
  const host = process.env.IOCMNG_HOST ?? "0.0.0.0";
  const port = Number(process.env.IOCMNG_PORT ?? 8080);
  const app = createApp({ version: VERSION }).listen({ hostname: host, port });
  log.info(
    { host, port: app.server?.port },
    `REST API listening on http://${host}:${app.server?.port}`,
  );
  return await new Promise<number>(() => {});
}

process.exitCode = await main(process.argv.slice(2));
