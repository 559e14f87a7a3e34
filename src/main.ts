#!/usr/bin/env bun
// The entry point of `bun src/main.ts` and of the compiled binary: parse the command line, run one
// subcommand, exit with its code. The wiring of the server lives in src/server.ts.
//
// The hidden `__plugin-host` subcommand (the server re-executing itself to run one plugin in its own
// process) is dispatched before the CLI is even imported: a plugin process loads only the plugin
// runtime, not the server, which keeps its memory small (src/plugins/host/).
//
// In the compiled executable the server (cli/index.ts) and the plugin runtime (host/entry.ts) are
// entrypoints of their own (scripts/build.ts), loaded by URL rather than bundled into this file:
// a plugin process then instantiates only the plugin runtime's bundle, not every function of the
// server's (~2.7 MB less anonymous memory per plugin process, docs/benchmarks.md).
const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
function part(entry: string, source: string): string {
  return compiled ? new URL(`./${entry}`, import.meta.url).href : source;
}
if (process.argv[2] === "__exec") {
  // A helper program (git) that must die with the server: src/plugins/host/exec.ts.
  const { runExec } = await import("./plugins/host/exec.ts");
  runExec(process.argv.slice(3));
} else if (process.argv[2] === "__plugin-host") {
  const { runPluginHost } = (await import(
    part("plugin-host.js", "./plugins/host/entry.ts")
  )) as typeof import("./plugins/host/entry.ts");
  await runPluginHost(process.argv.slice(3));
} else {
  const first = process.argv[2];
  if (
    first === undefined ||
    first === "serve" ||
    (first.startsWith("-") && !/^-(v|h|-version|-help)$/.test(first))
  ) {
    // The server (`serve`, also when named by flags only: src/cli/index.ts) runs with the
    // allocator settings of src/common/allocator.ts, which mimalloc reads only at process start.
    const { reexecWithAllocatorEnv } = await import("./common/allocator.ts");
    reexecWithAllocatorEnv();
  }
  // Non-dumpable: processes of the same uid (a plugin, when the server does not run as root) can
  // read neither /proc/<pid>/environ (the API token, pat_env variables) nor /proc/<pid>/mem (a PAT
  // held in memory during a clone), and cannot ptrace it. Also means: no core dumps.
  const { setNonDumpable } = await import("../ffi/libc.ts");
  setNonDumpable();
  const { runCli } = (await import(
    part("cli.js", "./cli/index.ts")
  )) as typeof import("./cli/index.ts");
  process.exitCode = await runCli(process.argv.slice(2));
}

export {};
