import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { errorMessage } from "../../common/errors.ts";
import { PLUGIN_NAME_RE } from "../../common/names.ts";
import { snapshotDir } from "../../common/snapshot.ts";
import { writePvList } from "../../compat/pvlist.ts";
import { parseParams as parseParamList, pluginDirFor } from "../../compat/run-options.ts";
import type { ServerConfig } from "../../config.ts";
import type { Runtime } from "../../server.ts";
import { listFlag, stringFlag } from "../args.ts";
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

/** Snapshots the working directory (see snapshotDir) as a CLI error on failure. */
function snapshot(dir: string, into: string): string {
  try {
    return snapshotDir(dir, into, "iocmng run");
  } catch (e) {
    throw new CliError(errorMessage(e));
  }
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

/** Validates the plugin source (printing each failed step) and returns its kind. */
async function validatedKind(
  dir: string,
  opts: { path?: string; kind?: "task" | "job" },
  ctx: CliContext,
): Promise<"task" | "job"> {
  // Loaded here, not at the top: the CLI evaluates only the modules of the command it runs.
  const { validatePluginSource } = await import("../../plugins/validate.ts");
  const report = await validatePluginSource({
    dir,
    ...(opts.path !== undefined ? { path: opts.path } : {}),
    ...(opts.kind !== undefined ? { kind: opts.kind } : {}),
  });
  if (!report.ok) {
    for (const s of report.steps) ctx.err(`  ${s.ok ? "ok  " : "FAIL"} ${s.step}: ${s.message}`);
    throw new CliError(`invalid plugin: ${failureLine(report)}`);
  }
  return report.kind;
}

async function runPlugin(
  dir: string,
  opts: {
    name: string;
    path?: string;
    kind?: "task" | "job";
    parameters: Record<string, unknown>;
    /** 2.7.9's --pvout: write every PV name there once the plugin is loaded. */
    pvout?: string;
  },
  config: ServerConfig,
  ctx: CliContext,
  once: boolean,
): Promise<number> {
  const kind = await validatedKind(dir, opts, ctx);
  const [{ createRootLogger }, { buildRuntime }] = await Promise.all([
    import("../../log.ts"),
    import("../../server.ts"),
  ]);
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
    if (opts.pvout !== undefined) {
      await writePvList(
        opts.pvout,
        added.value.pvs.map((pv) => pv.fullName),
      );
      ctx.out(`PV list written to ${opts.pvout}`);
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
    // iocmng 2.7.9's iocmng-run options (docs/cli.md).
    module: { type: "string", short: "m" },
    "class-name": { type: "string", short: "c" },
    config: { type: "string" },
    prefix: { type: "string" },
    pva: { type: "string", choices: ["true", "false"] },
    "log-level": {
      type: "string",
      choices: ["DEBUG", "INFO", "WARNING", "ERROR", "debug", "info", "warn", "warning", "error"],
    },
    pvout: { type: "string" },
    param: { type: "string", short: "p", repeatable: true },
  },
  maxPositionals: 1,
  async run(args, ctx) {
    let staged: ReturnType<typeof pluginDirFor>;
    let parameters: Record<string, unknown>;
    try {
      const target = args.positionals[0];
      if (target !== undefined && !("dir" in pluginSource(target, ctx.cwd))) {
        throw new Error("run takes a local directory; for a git URL use the server's REST API");
      }
      staged = pluginDirFor(
        target,
        stringFlag(args, "module"),
        stringFlag(args, "config"),
        ctx.cwd,
      );
      parameters = {
        ...parseParams(stringFlag(args, "params")),
        ...parseParamList(listFlag(args, "param")),
      };
    } catch (e) {
      if (e instanceof UsageError) throw e;
      const msg = errorMessage(e);
      // A directory that is not there is a failure to run (exit 1), not a usage mistake.
      if (msg.includes("no such directory")) throw new CliError(msg);
      throw new UsageError(msg);
    }
    if (stringFlag(args, "class-name") !== undefined) {
      ctx.err("--class-name: iocmng loads the one plugin class the directory exports; ignored");
    }
    if (stringFlag(args, "pva") === "true") {
      ctx.err("--pva true: links use Channel Access (the PVA client is not available yet)");
    }
    const source = { dir: staged.dir };
    const name = stringFlag(args, "name") ?? staged.defaultName;
    if (!PLUGIN_NAME_RE.test(name)) {
      throw new UsageError(
        `plugin name '${name}' must be 1 to 128 of A-Z a-z 0-9 _ - (use --name)`,
      );
    }
    let config: ServerConfig = loadCliConfig(ctx.env);
    const exactPrefix = stringFlag(args, "prefix");
    if (exactPrefix !== undefined) {
      if (!/^[A-Za-z0-9_\-+:[\]<>;]{1,128}$/.test(exactPrefix) || exactPrefix.endsWith(":")) {
        throw new UsageError(
          `--prefix '${exactPrefix}' must be a PV name fragment, not ending in ':'`,
        );
      }
      config = { ...config, exactPrefix };
    }
    const level = stringFlag(args, "log-level");
    if (level !== undefined)
      config = { ...config, logLevel: level.toLowerCase().replace(/^warning$/, "warn") };
    const kind = stringFlag(args, "kind");
    const path = stringFlag(args, "path");
    const pvout = stringFlag(args, "pvout");
    try {
      return await runPlugin(
        source.dir,
        {
          name,
          parameters,
          ...(path !== undefined ? { path } : {}),
          ...(kind === "task" || kind === "job" ? { kind } : {}),
          ...(pvout !== undefined ? { pvout: resolve(ctx.cwd, pvout) } : {}),
        },
        config,
        ctx,
        args.flags.once === true,
      );
    } finally {
      staged.cleanup();
    }
  },
};
