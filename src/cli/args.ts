import { UsageError } from "./errors.ts";

/** Declaration of one `--flag`: `string` flags take a value (`--path P` or `--path=P`). */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  /** For string flags: the accepted values, checked here so commands see only valid input. */
  choices?: readonly string[];
  /** String flags given several times (`-p a=1 -p b=2`); read them with {@link listFlag}. */
  repeatable?: boolean;
}

/** Result of parsing one subcommand's arguments. */
export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, string | boolean | undefined>;
}

/** Longest argument we accept: anything longer is a mistake or hostile, never a real path or URL. */
const MAX_ARG_LENGTH = 4096;

/**
 * Parses `argv` (already without the subcommand) against `spec`. Unknown flags, missing values and
 * bad choices throw UsageError; `--` ends flag parsing so a positional may start with `-`.
 */
export function parseArgs(
  argv: readonly string[],
  spec: Record<string, FlagSpec>,
  maxPositionals: number,
): ParsedArgs {
  const flags: ParsedArgs["flags"] = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(spec)) if (s.short) byShort.set(s.short, name);

  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg.length > MAX_ARG_LENGTH) {
      throw new UsageError(`argument ${i + 1} is longer than ${MAX_ARG_LENGTH} characters`);
    }
    if (arg.includes("\0")) throw new UsageError(`argument ${i + 1} contains a NUL byte`);
    if (onlyPositionals || arg === "-" || !arg.startsWith("-")) {
      positionals.push(arg);
      continue;
    }
    if (arg === "--") {
      onlyPositionals = true;
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else {
      const long = arg.length === 2 ? byShort.get(arg[1]!) : undefined;
      if (long === undefined) throw new UsageError(`unknown option '${arg}'`);
      name = long;
    }
    const s = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (s === undefined) throw new UsageError(`unknown option '--${name}'`);
    if (s.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`option '--${name}' takes no value`);
      flags[name] = true;
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("-") && next !== "-")) {
        throw new UsageError(`option '--${name}' needs a value`);
      }
      value = next;
      i++;
    }
    if (value === "") throw new UsageError(`option '--${name}' needs a non-empty value`);
    if (s.choices && !s.choices.includes(value)) {
      throw new UsageError(
        `option '--${name}' must be one of ${s.choices.join(", ")} (got '${value}')`,
      );
    }
    if (s.repeatable) {
      // NUL never occurs in an argument (refused above), so it separates the values safely.
      const prev = flags[name];
      flags[name] = typeof prev === "string" ? `${prev}\0${value}` : value;
      continue;
    }
    if (flags[name] !== undefined) throw new UsageError(`option '--${name}' given twice`);
    flags[name] = value;
  }
  if (positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${positionals[maxPositionals]}'`);
  }
  return { positionals, flags };
}

/** Every value of a repeatable string flag, in order. */
export function listFlag(args: ParsedArgs, name: string): string[] {
  const v = args.flags[name];
  return typeof v === "string" ? v.split("\0") : [];
}

/** The value of a string flag (parseArgs guarantees the type). */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags[name];
  return typeof v === "string" ? v : undefined;
}
