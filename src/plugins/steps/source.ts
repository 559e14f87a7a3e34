/**
 * The steps that bring the plugin's files and check them: clone, path, config, dependencies,
 * syntax. Nothing of the plugin runs yet.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, rmdir, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage } from "../../common/errors.ts";
import { checkBranch, checkGitUrl } from "../../common/git-url.ts";
import { loadPluginConfig, resolveParameters } from "../config.ts";
import { PluginConfigError } from "../config-schema.ts";
import { GitError, gitClone } from "../git.ts";
import {
  checkInsideClone,
  installDependencies,
  pluginMetaFiles,
  resolvePluginDir,
  syntaxCheck,
} from "../loader.ts";
import { type PipelineContext, type PipelineStepDef, requireSet } from "./context.ts";

export const isDirectory = (p: string): Promise<boolean> =>
  stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );

async function removeIfEmpty(dir: string): Promise<void> {
  const entries = await readdir(dir).catch(() => null);
  if (entries && entries.length === 0) await rmdir(dir).catch(() => {});
}

export const clone: PipelineStepDef = {
  name: "clone",
  async run(ctx) {
    const { spec, source, steps } = ctx;
    if (source.from === "dir") {
      if (!(await isDirectory(source.dir))) steps.fail("path", `${source.dir} is not a directory`);
      ctx.root = source.dir;
      return;
    }
    if (source.from === "disk") {
      if (!(await isDirectory(source.cloneDir))) {
        steps.fail("clone", `the plugin's clone ${source.cloneDir} is missing`);
      }
      ctx.root = source.cloneDir;
      steps.ok("clone", `using the clone on disk ${source.cloneDir}`);
      return;
    }
    let dest: string;
    if (source.from === "scratch") {
      const err = checkGitUrl(spec.git_url) ?? checkBranch(spec.branch);
      if (err) steps.fail("request", err);
      const tmp = await mkdtemp(join(tmpdir(), "iocmng-validate-"));
      ctx.always.push(() => rm(tmp, { recursive: true, force: true }).catch(() => {}));
      dest = join(tmp, "clone");
    } else {
      const server = requireSet(ctx.server ?? undefined, "server");
      const parent = join(server.config.pluginsDir, spec.name);
      await mkdir(parent, { recursive: true });
      dest = join(parent, `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`);
      ctx.undo.push(async () => {
        await rm(dest, { recursive: true, force: true }).catch(() => {});
        // The per-plugin directory too, when nothing else (an older clone) lives there.
        await removeIfEmpty(parent);
      });
    }
    ctx.root = dest;
    try {
      const { commit } = await gitClone({
        url: spec.git_url,
        dest,
        ...(spec.branch ? { branch: spec.branch } : {}),
        ...(spec.pat ? { pat: spec.pat } : {}),
        timeoutMs: ctx.timings.cloneTimeoutMs,
        ...(ctx.server ? { signal: ctx.server.signal } : {}),
      });
      steps.ok("clone", `cloned ${spec.branch ? `${spec.branch} ` : ""}at ${commit.slice(0, 12)}`);
    } catch (e) {
      steps.fail(
        "clone",
        e instanceof GitError ? e.message : `git clone failed: ${errorMessage(e)}`,
      );
    }
  },
};

export const path: PipelineStepDef = {
  name: "path",
  async run(ctx) {
    const root = requireSet(ctx.root, "root");
    const dir = await resolvePluginDir(root, ctx.spec.path);
    await checkInsideClone(root, pluginMetaFiles(dir), "path");
    ctx.dir = dir;
    const where = ctx.spec.path
      ? `plugin directory ${ctx.spec.path}`
      : "plugin at the repository root";
    // Validation prints where it looked; the server's report names what was asked for.
    ctx.steps.ok("path", ctx.server ? where : dir);
  },
};

/** config.yaml of `dir` for `kind`, its errors as the `config` step's. */
export async function readConfig(ctx: PipelineContext, dir: string): Promise<void> {
  try {
    ctx.cfg = await loadPluginConfig(dir, ctx.kind);
    ctx.resolved = resolveParameters(ctx.cfg, ctx.spec.overrides);
  } catch (e) {
    if (e instanceof PluginConfigError) ctx.steps.fail("config", e.message);
    throw e;
  }
}

export const config: PipelineStepDef = {
  name: "config",
  async run(ctx) {
    await readConfig(ctx, requireSet(ctx.dir, "dir"));
    const cfg = requireSet(ctx.cfg, "cfg");
    const mode = ctx.server ? `, mode ${requireSet(ctx.resolved, "resolved").mode}` : "";
    ctx.steps.ok(
      "config",
      cfg.file ? `${cfg.pvs.length} PVs declared${mode}` : "no config.yaml (defaults)",
    );
  },
};

export const dependencies: PipelineStepDef = {
  name: "dependencies",
  async run(ctx) {
    const dir = requireSet(ctx.dir, "dir");
    if (ctx.source.from === "disk" && (await isDirectory(join(dir, "node_modules")))) {
      ctx.steps.ok("dependencies", "already installed");
      return;
    }
    const signal = ctx.server?.signal;
    ctx.steps.ok(
      "dependencies",
      await installDependencies(dir, ctx.timings.installTimeoutMs, signal),
    );
  },
};

export const syntax: PipelineStepDef = {
  name: "syntax",
  async run(ctx) {
    const n = await syntaxCheck(requireSet(ctx.dir, "dir"));
    ctx.steps.ok("syntax", `${n} source file${n === 1 ? "" : "s"} parsed`);
  },
};
