/**
 * Real git repositories for tests: `createRepo({files})` runs `git init`, writes the files, commits,
 * optionally adds branches and tags, and returns a file:// URL. No mocked git.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** A file's content, or a symlink to create. */
export type RepoFile = string | { symlink: string };

/** What to put in the repository. */
export interface RepoSpec {
  /** Files of the default branch ("main"), path → content. */
  files: Record<string, RepoFile>;
  /** Extra branches: name → files (written over a copy of the main tree, committed). */
  branches?: Record<string, Record<string, RepoFile>>;
  /** Tags on the main branch's commit. */
  tags?: string[];
}

/** A created repository. */
export interface TestRepo {
  dir: string;
  url: string;
  /** Deletes the repository. */
  cleanup(): Promise<void>;
}

/** Runs git in `cwd`; throws with its stderr on failure. */
export async function git(cwd: string, ...args: string[]): Promise<string> {
  const p = Bun.spawn(["git", ...args], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "test",
      GIT_AUTHOR_EMAIL: "test@example.invalid",
      GIT_COMMITTER_NAME: "test",
      GIT_COMMITTER_EMAIL: "test@example.invalid",
      GIT_CONFIG_NOSYSTEM: "1",
    },
  });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`git ${args.join(" ")} failed: ${err}`);
  return out;
}

async function writeFiles(root: string, files: Record<string, RepoFile>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const full = join(root, rel);
    await mkdir(dirname(full), { recursive: true });
    if (typeof content === "string") await writeFile(full, content);
    else {
      await rm(full, { force: true });
      await symlink(content.symlink, full);
    }
  }
}

/** Creates a repository from `spec` in a fresh temp directory. */
export async function createRepo(spec: RepoSpec): Promise<TestRepo> {
  const dir = await mkdtemp(join(tmpdir(), "iocmng-repo-"));
  await git(dir, "init", "-q", "-b", "main");
  await writeFiles(dir, spec.files);
  await git(dir, "add", "-A");
  await git(dir, "commit", "-q", "-m", "initial");
  for (const t of spec.tags ?? []) await git(dir, "tag", t);
  for (const [branch, files] of Object.entries(spec.branches ?? {})) {
    await git(dir, "checkout", "-q", "-b", branch, "main");
    await writeFiles(dir, files);
    await git(dir, "add", "-A");
    await git(dir, "commit", "-q", "-m", `branch ${branch}`);
    await git(dir, "checkout", "-q", "main");
  }
  return {
    dir,
    url: `file://${dir}`,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Replaces files on main with a new commit (for restart tests). */
export async function commitFiles(repo: TestRepo, files: Record<string, RepoFile>): Promise<void> {
  await writeFiles(repo.dir, files);
  await git(repo.dir, "add", "-A");
  await git(repo.dir, "commit", "-q", "-m", "update");
}
