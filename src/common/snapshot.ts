/**
 * A directory of the machine as a git repository, so a plugin from it goes through the very
 * pipeline a git URL does (`iocmng run` on a working tree, 2.7.9's `local_path`).
 */
import { cpSync } from "node:fs";
import { basename } from "node:path";

/**
 * Copies `dir` into `into` (uncommitted edits included; `.git` and `node_modules` left out) and
 * commits it as branch `main`; returns its `file://` URL. Throws an Error naming the git step that
 * failed. The commit must not depend on the user's git configuration (hooks, signing, templates),
 * hence an empty global and system configuration and a fixed identity.
 */
export function snapshotDir(dir: string, into: string, author: string): string {
  cpSync(dir, into, {
    recursive: true,
    filter: (src) => basename(src) !== ".git" && basename(src) !== "node_modules",
  });
  for (const args of [
    ["init", "-q", "-b", "main"],
    ["add", "-A"],
    ["commit", "-q", "--allow-empty", "-m", `${author} snapshot`],
  ]) {
    const p = Bun.spawnSync(["git", ...args], {
      cwd: into,
      stdout: "ignore",
      stderr: "pipe",
      env: {
        ...process.env,
        GIT_CONFIG_GLOBAL: "/dev/null",
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_AUTHOR_NAME: author,
        GIT_AUTHOR_EMAIL: "iocmng@localhost",
        GIT_COMMITTER_NAME: author,
        GIT_COMMITTER_EMAIL: "iocmng@localhost",
      },
    });
    if (p.exitCode !== 0) {
      throw new Error(`git ${args[0]} failed: ${p.stderr.toString().trim().split("\n")[0]}`);
    }
  }
  return `file://${into}`;
}
