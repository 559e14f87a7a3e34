import { stringFlag } from "../args.ts";
import type { Command } from "../command.ts";
import { EXIT, UsageError } from "../errors.ts";
import { failureLine, pluginSource } from "../source.ts";

/** `iocmng validate`: the server's validation pipeline on a directory or git URL, no server. */
export const validateCommand: Command = {
  name: "validate",
  summary: "run the full plugin validation pipeline on a directory or git URL, without a server",
  usage: "iocmng validate <dir | git-url> [--path P] [--branch B] [--kind task|job] [--json]",
  details: [
    "Runs what POST /api/v1/tasks or /jobs runs (clone, path, config.yaml, dependencies, syntax,",
    "import, base class, abstract methods) and prints every step. Exit 0 when the plugin is valid,",
    "1 when a step fails (the failing step and its message are printed). --kind checks that the",
    "plugin is a task or a job; without it either is accepted. --json prints the report as JSON.",
  ].join("\n"),
  flags: {
    path: { type: "string" },
    branch: { type: "string" },
    kind: { type: "string", choices: ["task", "job"] },
    json: { type: "boolean" },
  },
  maxPositionals: 1,
  async run(args, ctx) {
    const target = args.positionals[0];
    if (target === undefined) throw new UsageError("missing plugin directory or git URL");
    const source = pluginSource(target, ctx.cwd);
    const branch = stringFlag(args, "branch");
    if (branch !== undefined && "dir" in source) {
      throw new UsageError("--branch applies to git URLs only");
    }
    const kindFlag = stringFlag(args, "kind");
    // Loaded here, not at the top: the CLI evaluates only the modules of the command it runs.
    const { validatePluginSource } = await import("../../plugins/validate.ts");
    const report = await validatePluginSource({
      ...source,
      ...(stringFlag(args, "path") !== undefined ? { path: stringFlag(args, "path") } : {}),
      ...(branch !== undefined ? { branch } : {}),
      ...(kindFlag === "task" || kindFlag === "job" ? { kind: kindFlag } : {}),
    });
    if (args.flags.json === true) {
      ctx.out(JSON.stringify(report, null, 2));
      return report.ok ? EXIT.ok : EXIT.failure;
    }
    for (const s of report.steps) {
      ctx.out(`  ${s.ok ? "ok  " : "FAIL"} ${s.step}${s.message ? `: ${s.message}` : ""}`);
    }
    if (report.ok) {
      ctx.out(`valid ${report.kind}: ${report.message}`);
      return EXIT.ok;
    }
    ctx.err(`iocmng validate: invalid plugin: ${failureLine(report)}`);
    return EXIT.failure;
  },
};
