import { commitFiles, createRepo, type RepoFile } from "./git-repo.ts";

/**
 * The end-to-end tests' view of a real git repository (file:// URL): `createRepo` from
 * git-repo.ts underneath, with `commit`/`remove` methods instead of free functions.
 */
export interface TestRepo {
  dir: string;
  url: string;
  /** Replaces/adds files and commits them (for restart tests). */
  commit(files: Record<string, string>): Promise<void>;
  remove(): Promise<void>;
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
  const all: Record<string, RepoFile> = { ...files };
  for (const [link, target] of Object.entries(opts.symlinks ?? {})) all[link] = { symlink: target };
  const repo = await createRepo({
    files: all,
    ...(opts.branches ? { branches: opts.branches } : {}),
  });
  return {
    dir: repo.dir,
    url: repo.url,
    commit: (more) => commitFiles(repo, more),
    remove: repo.cleanup,
  };
}
