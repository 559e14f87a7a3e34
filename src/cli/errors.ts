/** Bad command line (unknown flag, missing argument): exit code 2, one line plus a hint. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** An operation that failed for a reason the user can act on: exit code 1, one line, no stack. */
export class CliError extends Error {
  override readonly name = "CliError";
}

/** Exit codes of every subcommand. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
