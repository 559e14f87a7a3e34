import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { PLUGIN_NAME_RE } from "../../common/names.ts";
import type { ServerConfig } from "../../config.ts";
import { createRootLogger } from "../../log.ts";
import { validatePluginSource } from "../../plugins/validate.ts";
import { buildRuntime, type Runtime } from "../../server.ts";
import { stringFlag } from "../args.ts";
import type { CliContext, Command } from "../command.ts";
import { loadCliConfig } from "../config.ts";
import { CliError, EXIT, UsageError } from "../errors.ts";
import { failureLine, pluginSource } from "../source.ts";

/** Parses `--params '{"k": 1}'` into an object (anything else is a usage error). */
function parseParams(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new UsageError("--params must be a JSON object, e.g. '{\"interval\": 0.5}'");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new UsageError("--params must be a JSON object, e.g. '{\"interval\": 0.5}'");
  }
  return v as Record<string, unknown>;
}

function git(cwd: string, args: string[]): void {
  const p = Bun.spawnSync(["git", ...args], {
    cwd,
    stdout: "ignore",
    stderr: "pipe",
    // The snapshot must not depend on the user's git configuration (hooks, signing, templates).
    env: {
      ...process.env,
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "iocmng run",
      GIT_AUTHOR_EMAIL: "iocmng@localhost",
      GIT_COMMITTER_NAME: "iocmng run",
      GIT_COMMITTER_EMAIL: "iocmng@localhost",
    },
  });
  if (p.exitCode !== 0) {
    throw new CliError(`git ${args[0]} failed: ${p.stderr.toString().trim().split("\n")[0]}`);
  }
}

/**
 * Snapshots the working directory (uncommitted edits included, .git and node_modules left out)
 * into a fresh git repository, so the plugin goes through the very pipeline the server runs.
 */
function snapshot(dir: string, into: string): string {
  cpSync(dir, into, {
    recursive: true,
    filter: (src) => {
      const b = basename(src);
      return b !== ".git" && b !== "node_modules";
    },
  });
  git(into, ["init", "-q", "-b", "main"]);
  git(into, ["add", "-A"]);
  git(into, ["commit", "-q", "--allow-empty", "-m", "iocmng run snapshot"]);
  return `file://${into}`;
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(s);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

async function runPlugin(
  dir: string,
  opts: { name: string; path?: string; kind?: "task" | "job"; parameters: Record<string, unknown> },
  config: ServerConfig,
  ctx: CliContext,
  once: boolean,
): Promise<number> {
  const report = await validatePluginSource({
    dir,
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
  });
  const kind = report.kind;
  if (!report.ok) {
    for (const s of report.steps) ctx.err(`  ${s.ok ? "ok  " : "FAIL"} ${s.step}: ${s.message}`);
    throw new CliError(`invalid plugin: ${failureLine(report)}`);
  }
  const work = mkdtempSync(join(tmpdir(), "iocmng-run-"));
  const log = createRootLogger(config.logLevel);
  const cfg: ServerConfig = {
    ...config,
    pluginsDir: join(work, "plugins"),
    stateDir: join(work, "state"),
    plugins: [],
  };
  let runtime: Runtime | null = null;
  try {
    const url = snapshot(dir, join(work, "source"));
    runtime = await buildRuntime(cfg, log, { env: ctx.env });
    const { controller, ca } = runtime;
    const added = await controller.add({
      name: opts.name,
      kind,
      git_url: url,
      ...(opts.path !== undefined ? { path: opts.path } : {}),
      parameters: opts.parameters,
    });
    if (!added.ok) throw new CliError(added.message);
    ctx.out(
      `${kind} '${opts.name}' running; Channel Access on TCP ${ca?.tcpPort}, UDP ${ca?.udpPort}`,
    );
    for (const pv of added.value.pvs) {
      ctx.out(`  ${pv.fullName}${pv.writable ? "  (writable)" : ""}`);
    }
    let code: number = EXIT.ok;
    if (kind === "job") {
      const r = await controller.runJob(opts.name);
      if (!r.ok) throw new CliError(r.message);
      ctx.out(JSON.stringify(r.value));
      if (!r.value.success) code = EXIT.failure;
    }
    if (!once) {
      ctx.out("Ctrl-C stops");
      await waitForSignal();
    }
    return code;
  } finally {
    try {
      await runtime?.stop();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

/** `iocmng run <dir>`: one plugin, its PVs on Channel Access, no REST (for development). */
export const runCommand: Command = {
  name: "run",
  summary: "run one plugin from a local directory with its PVs on Channel Access (no REST)",
  usage: "iocmng run <dir> [--name N] [--path P] [--kind task|job] [--params JSON] [--once]",
  details: [
    "Validates the directory, then loads it through the same pipeline as the server (a snapshot",
    "of the directory, uncommitted edits included) and serves its PVs on the CA port from",
    "EPICS_CAS_SERVER_PORT / EPICS_CA_SERVER_PORT until Ctrl-C. A job is run once at start and its",
    "result printed. --once exits right after loading (and running a job): exit 1 if the job failed.",
    "--name defaults to the directory name; --params overrides config.yaml parameters.",
  ].join("\n"),
  flags: {
    name: { type: "string" },
    path: { type: "string" },
    kind: { type: "string", choices: ["task", "job"] },
    params: { type: "string" },
    once: { type: "boolean" },
  },
  maxPositionals: 1,
  async run(args, ctx) {
    const target = args.positionals[0];
    if (target === undefined) throw new UsageError("missing plugin directory");
    const parameters = parseParams(stringFlag(args, "params"));
    const source = pluginSource(target, ctx.cwd);
    if (!("dir" in source)) {
      throw new UsageError("run takes a local directory; for a git URL use the server's REST API");
    }
    const name = stringFlag(args, "name") ?? basename(source.dir);
    if (!PLUGIN_NAME_RE.test(name)) {
      throw new UsageError(
        `plugin name '${name}' must be 1 to 128 of A-Z a-z 0-9 _ - (use --name)`,
      );
    }
    const config = loadCliConfig(ctx.env);
    const kind = stringFlag(args, "kind");
    const path = stringFlag(args, "path");
    return runPlugin(
      source.dir,
      {
        name,
        parameters,
        ...(path !== undefined ? { path } : {}),
        ...(kind === "task" || kind === "job" ? { kind } : {}),
      },
      config,
      ctx,
      args.flags.once === true,
    );
  },
};
