import type { FlagSpec, ParsedArgs } from "./args.ts";

/** Where a command writes and what it reads: injected so tests run commands in-process. */
export interface CliContext {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Record<string, string | undefined>;
  cwd: string;
}

/** One subcommand: its help text, its flags, and what it does (resolves to the exit code). */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Paragraphs printed by `iocmng <name> --help` after the usage line. */
  details: string;
  flags: Record<string, FlagSpec>;
  maxPositionals: number;
  run(args: ParsedArgs, ctx: CliContext): Promise<number>;
}
