import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A real git repository made by a test, reachable through a file:// URL. */
export interface TestRepo {
  dir: string;
  url: string;
  /** Replaces/adds files and commits them (for restart tests). */
  commit(files: Record<string, string>, message?: string): Promise<void>;
  remove(): Promise<void>;
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const p = Bun.spawn(["git", ...args], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "iocmng test",
      GIT_AUTHOR_EMAIL: "test@iocmng.invalid",
      GIT_COMMITTER_NAME: "iocmng test",
      GIT_COMMITTER_EMAIL: "test@iocmng.invalid",
      GIT_CONFIG_NOSYSTEM: "1",
    },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`git ${args.join(" ")} failed (${code}): ${err}`);
  return out;
}

async function writeFiles(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const p = join(root, rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, text);
  }
}

/** `git init` a temp dir with `files` (and `symlinks`) on branch `main`, plus extra `branches`. */
export async function makeRepo(
  files: Record<string, string>,
  opts: {
    branches?: Record<string, Record<string, string>>;
    /** Symbolic links to commit: link path → target (for path-escape tests). */
    symlinks?: Record<string, string>;
  } = {},
): Promise<TestRepo> {
  const dir = await mkdtemp(join(tmpdir(), "iocmng-e2e-repo-"));
  await git(dir, "init", "-q", "-b", "main");
  await writeFiles(dir, files);
  for (const [link, target] of Object.entries(opts.symlinks ?? {})) {
    await mkdir(dirname(join(dir, link)), { recursive: true });
    await symlink(target, join(dir, link));
  }
  await git(dir, "add", "-A");
  await git(dir, "commit", "-q", "-m", "initial");
  for (const [branch, extra] of Object.entries(opts.branches ?? {})) {
    await git(dir, "checkout", "-q", "-b", branch);
    await writeFiles(dir, extra);
    await git(dir, "add", "-A");
    await git(dir, "commit", "-q", "-m", `branch ${branch}`);
    await git(dir, "checkout", "-q", "main");
  }
  return {
    dir,
    url: `file://${dir}`,
    async commit(more, message = "update") {
      await writeFiles(dir, more);
      await git(dir, "add", "-A");
      await git(dir, "commit", "-q", "-m", message);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
