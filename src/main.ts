#!/usr/bin/env bun
import { runCli } from "./cli/index.ts";

// The entry point of `bun src/main.ts` and of the compiled binary: parse the command line, run one
// subcommand, exit with its code. The wiring of the server lives in src/server.ts.
process.exitCode = await runCli(process.argv.slice(2));
