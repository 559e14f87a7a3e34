#!/usr/bin/env bun
// The entry point of `bun src/main.ts` and of the compiled binary: parse the command line, run one
// subcommand, exit with its code. The wiring of the server lives in src/server.ts.
//
// The hidden `__plugin-host` subcommand (the server re-executing itself to run one plugin in its own
// process) is dispatched before the CLI is even imported: a plugin process loads only the plugin
// runtime, not the server, which keeps its memory small (src/plugins/host/).
if (process.argv[2] === "__plugin-host") {
  const { runPluginHost } = await import("./plugins/host/entry.ts");
  await runPluginHost(process.argv.slice(3));
} else {
  // Non-dumpable: processes of the same uid (a plugin, when the server does not run as root) can
  // read neither /proc/<pid>/environ (the API token, pat_env variables) nor /proc/<pid>/mem (a PAT
  // held in memory during a clone), and cannot ptrace it. Also means: no core dumps.
  const { setNonDumpable } = await import("../ffi/libc.ts");
  setNonDumpable();
  const { runCli } = await import("./cli/index.ts");
  process.exitCode = await runCli(process.argv.slice(2));
}

export {};
