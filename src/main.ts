#!/usr/bin/env bun
import { loadConfig } from "./config.ts";
import { createRootLogger } from "./log.ts";
import { installSignalHandlers, startServer } from "./server.ts";
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
  const config = loadConfig(process.env);
  const log = createRootLogger(config.logLevel);
  const server = await startServer(config, log);
  installSignalHandlers(server, log);
  return await new Promise<number>(() => {});
}

process.exitCode = await main(process.argv.slice(2));
