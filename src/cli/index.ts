import { errorMessage } from "../common/errors.ts";
import { VERSION } from "../version.ts";
import { parseArgs } from "./args.ts";
import type { CliContext, Command } from "./command.ts";
import { healthCommand } from "./commands/health.ts";
import { newCommand } from "./commands/new.ts";
import { runCommand } from "./commands/run.ts";
import { serveCommand } from "./commands/serve.ts";
import { validateCommand } from "./commands/validate.ts";
import { EXIT, UsageError } from "./errors.ts";

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [
  serveCommand,
  validateCommand,
  newCommand,
  runCommand,
  healthCommand,
];

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    `iocmng ${VERSION} — EPICS IOC manager: TypeScript tasks and jobs from git, served over Channel Access`,
    "",
    "Usage: iocmng [command] [options]     (no command = serve)",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    "  -h, --help     help for iocmng or for one command (iocmng <command> --help)",
    "  -v, --version  print the version",
    "",
    "Exit codes: 0 success, 1 failure, 2 usage error. IOCMNG_LOG_LEVEL=debug shows stack traces.",
  ].join("\n");
}

function commandHelp(c: Command): string {
  const flagLines = Object.entries(c.flags).map(([name, s]) => {
    const short = s.short ? `-${s.short}, ` : "    ";
    const value = s.type === "string" ? ` <${s.choices ? s.choices.join("|") : "value"}>` : "";
    return `  ${short}--${name}${value}`;
  });
  return [
    `Usage: ${c.usage}`,
    "",
    c.summary,
    "",
    c.details,
    "",
    "Options:",
    ...flagLines,
    "  -h, --help",
  ].join("\n");
}

function isDebug(env: CliContext["env"]): boolean {
  const level = env.IOCMNG_LOG_LEVEL;
  return level === "debug" || level === "trace";
}

/** Process-wide defaults for a real run (tests pass their own context). */
export function defaultContext(): CliContext {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    cwd: process.cwd(),
  };
}

/**
 * Runs the command line `argv` (without the executable) and resolves to the exit code:
 * 0 success, 1 failure, 2 usage. Errors are printed as one line; the stack only at debug level.
 */
export async function runCli(argv: readonly string[], ctx: CliContext = defaultContext()) {
  const first = argv[0];
  if (first === "--version" || first === "-v" || first === "version") {
    ctx.out(VERSION);
    return EXIT.ok;
  }
  if (first === "--help" || first === "-h" || first === "help") {
    const topic = first === "help" ? argv[1] : undefined;
    const c = topic === undefined ? undefined : COMMANDS.find((x) => x.name === topic);
    if (topic !== undefined && c === undefined) {
      ctx.err(`iocmng: unknown command '${topic}' (try 'iocmng --help')`);
      return EXIT.usage;
    }
    ctx.out(c ? commandHelp(c) : mainHelp());
    return EXIT.ok;
  }
  // No command, or flags only, means `serve` (so `npm start -- --help` style flags still work).
  const explicit = first !== undefined && !first.startsWith("-");
  const name = explicit ? first : "serve";
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined) {
    ctx.err(`iocmng: unknown command '${name}' (try 'iocmng --help')`);
    return EXIT.usage;
  }
  const rest = explicit ? argv.slice(1) : argv;
  if (rest.includes("--help") || rest.includes("-h")) {
    ctx.out(commandHelp(command));
    return EXIT.ok;
  }
  try {
    const args = parseArgs(rest, command.flags, command.maxPositionals);
    return await command.run(args, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.err(`iocmng ${command.name}: ${e.message} (try 'iocmng ${command.name} --help')`);
      return EXIT.usage;
    }
    reportFailure(`iocmng ${command.name}`, e, ctx);
    return EXIT.failure;
  }
}

/** Prints an unexpected error as one line (plus the stack at debug level). */
export function reportFailure(prefix: string, e: unknown, ctx: CliContext): void {
  const message = errorMessage(e);
  ctx.err(`${prefix}: ${message.split("\n")[0]}`);
  if (isDebug(ctx.env) && e instanceof Error && e.stack) ctx.err(e.stack);
}
