import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { errorMessage } from "../../common/errors.ts";
import { PLUGIN_NAME_RE } from "../../common/names.ts";
import { stringFlag } from "../args.ts";
import type { Command } from "../command.ts";
import { CliError, EXIT, UsageError } from "../errors.ts";
import { scaffoldPlugin } from "../templates.ts";

/** `iocmng new task|job <name>`: writes a ready-to-commit plugin directory. */
export const newCommand: Command = {
  name: "new",
  summary: "create a plugin directory (source, config.yaml, package.json, unit test, README)",
  usage: "iocmng new task|job <name> [--dir PARENT] [--mode continuous|triggered]",
  details: [
    "Writes PARENT/<name>/ (PARENT defaults to the current directory). The directory must not",
    "exist or must be empty. --mode picks the task flavour (continuous by default).",
  ].join("\n"),
  flags: {
    dir: { type: "string" },
    mode: { type: "string", choices: ["continuous", "triggered"] },
  },
  maxPositionals: 2,
  async run(args, ctx) {
    const [kind, name] = args.positionals;
    if (kind !== "task" && kind !== "job") {
      throw new UsageError(
        kind === undefined
          ? "missing kind: task or job"
          : `kind must be task or job (got '${kind}')`,
      );
    }
    if (name === undefined) throw new UsageError("missing plugin name");
    if (!PLUGIN_NAME_RE.test(name)) {
      throw new UsageError(`plugin name '${name}' must be 1 to 128 of A-Z a-z 0-9 _ -`);
    }
    const modeFlag = stringFlag(args, "mode");
    if (kind === "job" && modeFlag !== undefined) {
      throw new UsageError("--mode applies to tasks only");
    }
    const mode = modeFlag === "triggered" ? "triggered" : "continuous";
    const target = resolve(ctx.cwd, stringFlag(args, "dir") ?? ".", name);
    let exists = false;
    try {
      const st = statSync(target);
      exists = true;
      if (!st.isDirectory()) throw new CliError(`${target} exists and is not a directory`);
    } catch (e) {
      if (e instanceof CliError) throw e;
    }
    if (exists && readdirSync(target).length > 0) {
      throw new CliError(`${target} already exists and is not empty`);
    }
    const files = scaffoldPlugin({ kind, name, mode });
    try {
      mkdirSync(target, { recursive: true });
      for (const [file, content] of Object.entries(files)) {
        writeFileSync(join(target, file), content, { flag: "wx" });
      }
    } catch (e) {
      throw new CliError(`cannot write ${target}: ${errorMessage(e)}`);
    }
    ctx.out(`created ${kind === "task" ? `${mode} task` : "job"} '${name}' in ${target}`);
    for (const file of Object.keys(files).sort()) ctx.out(`  ${file}`);
    ctx.out(`next: cd ${target} && bun install && bun test && iocmng validate .`);
    return EXIT.ok;
  },
};
