/**
 * Cloning plugin repositories with the spawned `git` CLI, safely: only https/ssh/scp-style/file
 * URLs, no option injection, no `ext::`/`fd::` transports, no prompts, and a token that never
 * reaches argv, the environment, URLs, logs, error messages or files on disk: git's file descriptor
 * 3 is a socket from which an inline credential helper (given with `git -c`, which git does not
 * persist into the clone) reads it once. A child's environment and argv are readable in
 * /proc/<pid>/ by every process of its uid; an fd is not without ptrace rights.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkBranch, checkGitUrl } from "../common/git-url.ts";
import { runBounded } from "./spawn.ts";

/** A git failure; the message is already scrubbed of secrets. */
export class GitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GitError";
  }
}

/** Replaces every secret (and URL userinfo) in `text`. */
export function scrub(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s && s.length > 0) out = out.split(s).join("***");
  }
  // Any credentials a remote echoed back inside a URL.
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1***@");
}

/** Options of {@link gitClone}. */
export interface CloneOptions {
  url: string;
  dest: string;
  branch?: string;
  /** Token for https remotes; memory only. */
  pat?: string;
  timeoutMs?: number;
  /** Aborting kills the clone (server shutdown). */
  signal?: AbortSignal;
}

/** Variable the token was once passed in (git is still spawned without it; kept hidden from plugins). */
export const PAT_ENV = "IOCMNG_GIT_TOKEN";
/**
 * The inline credential helper (`git -c credential.helper=…`): for `get`, copies what arrives on
 * fd 3 (inherited from git, which runs it) to git. Shell built-ins only: our image has no `cat`.
 * The token is read once; a second `get` sees EOF and git fails the authentication.
 */
export const CREDENTIAL_HELPER = `!f() { test "$1" = get || exit 0; while IFS= read -r l <&3; do printf '%s\\n' "$l"; done; }; f`;

/** What the helper prints: git's credential protocol lines. */
export function credentialText(pat: string): string {
  return `username=x-access-token\npassword=${pat}\n`;
}

function gitEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Inherited GIT_* variables could redirect the clone (GIT_DIR, GIT_CONFIG_*, GIT_SSH_COMMAND…).
    if (v !== undefined && !k.startsWith("GIT_") && k !== "SSH_ASKPASS" && k !== PAT_ENV) {
      env[k] = v;
    }
  }
  env.GIT_TERMINAL_PROMPT = "0";
  env.GIT_ALLOW_PROTOCOL = "https:ssh:file";
  env.GIT_SSH_COMMAND = "ssh -o BatchMode=yes";
  env.LC_ALL = "C";
  return env;
}

/** argv of `git clone` for these options (exported for tests: it must never contain the token). */
export function cloneArgs(opts: CloneOptions): string[] {
  const args = [
    "git",
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "protocol.ssh.allow=always",
    "-c",
    "protocol.file.allow=always",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "protocol.fd.allow=never",
    "-c",
    "core.askPass=",
    "-c",
    "credential.helper=",
  ];
  if (opts.pat) args.push("-c", `credential.helper=${CREDENTIAL_HELPER}`);
  const local = localPath(opts.url);
  // A local repository is copied as files (half the time of a shallow fetch through upload-pack,
  // pack-objects, index-pack and a connectivity check); `--depth` does not apply to such a copy.
  // --no-hardlinks: a plugin of the server's own uid could otherwise chmod and rewrite the
  // operator's object files through the shared inodes.
  if (local !== null)
    args.push("clone", "--no-hardlinks", "--single-branch", "--no-tags", "--quiet");
  else args.push("clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet");
  if (opts.branch) args.push("--branch", opts.branch);
  args.push("--", local ?? opts.url, opts.dest);
  return args;
}

/**
 * The local path of a `file://` URL (already checked by checkGitUrl: absolute, no host but
 * localhost), or null for a network URL. Git treats a plain path as a local clone.
 */
export function localPath(url: string): string | null {
  if (!url.startsWith("file://")) return null;
  try {
    return fileURLToPath(url.replace(/^file:\/\/localhost\//, "file:///"));
  } catch {
    return null;
  }
}

/**
 * The commit HEAD of a fresh clone points at, read from its files (a detached HEAD, or a branch's
 * loose ref: what `git clone` writes), saving the start of one more git; null when it is elsewhere.
 */
async function headCommit(dest: string): Promise<string | null> {
  const gitDir = join(dest, ".git");
  const head = (await readFile(join(gitDir, "HEAD"), "utf8").catch(() => "")).trim();
  if (/^[0-9a-f]{40}$/.test(head)) return head;
  const ref = /^ref: (refs\/heads\/[A-Za-z0-9._/+-]+)$/.exec(head)?.[1];
  if (ref === undefined || ref.includes("..")) return null;
  const sha = (await readFile(join(gitDir, ref), "utf8").catch(() => "")).trim();
  return /^[0-9a-f]{40}$/.test(sha) ? sha : null;
}

/** Runs git with the safe environment; returns stdout or throws a scrubbed GitError. */
async function runGit(
  args: string[],
  pat: string | undefined,
  timeoutMs: number,
  cwd?: string,
  signal?: AbortSignal,
  dieWithServer = false,
): Promise<string> {
  const { out, err, code, timedOut } = await runBounded(
    args,
    {
      env: gitEnv(),
      dieWithServer,
      ...(pat ? { fd3: credentialText(pat) } : {}),
      ...(cwd ? { cwd } : {}),
      ...(signal ? { signal } : {}),
    },
    timeoutMs,
  );
  if (signal?.aborted) throw new GitError("stopped: the server is shutting down");
  if (timedOut) throw new GitError(`git timed out after ${Math.round(timeoutMs / 1000)} s`);
  if (code !== 0) {
    const text = scrub(err.trim() || out.trim() || `git exited with code ${code}`, [pat]);
    throw new GitError(text.split("\n").slice(-5).join("; "));
  }
  return out;
}

/**
 * Clones `url` (branch or tag) into `dest`, shallow over the network, as a file copy when local;
 * returns the checked-out commit.
 */
export async function gitClone(opts: CloneOptions): Promise<{ commit: string }> {
  const urlErr = checkGitUrl(opts.url);
  if (urlErr) throw new GitError(urlErr);
  const branchErr = checkBranch(opts.branch);
  if (branchErr) throw new GitError(branchErr);
  // A line break in the token would add lines to git's credential protocol.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (opts.pat !== undefined && /[\x00-\x1f\x7f]/.test(opts.pat)) {
    throw new GitError("the token contains control characters");
  }
  const timeoutMs = opts.timeoutMs ?? 120_000;
  try {
    // A network clone (it can hang, it may hold a token) dies with the server; a local file://
    // clone is short and tokenless, so it skips the extra start of the wrapper (boot reaping
    // still covers it), as does rev-parse below.
    const remote = !opts.url.startsWith("file://");
    await runGit(cloneArgs(opts), opts.pat, timeoutMs, undefined, opts.signal, remote);
  } catch (e) {
    if (e instanceof GitError) throw new GitError(`git clone failed: ${e.message}`);
    throw new GitError(`git clone failed: ${scrub(String(e), [opts.pat])}`);
  }
  if (opts.pat) {
    // Defence in depth: the token must not have reached the clone's config (e.g. via a remote URL).
    const cfg = await readFile(`${opts.dest}/.git/config`, "utf8").catch(() => "");
    if (cfg.includes(opts.pat)) throw new GitError("git clone failed: token found in .git/config");
  }
  const commit =
    (await headCommit(opts.dest)) ??
    (await runGit(["git", "rev-parse", "HEAD"], undefined, 10_000, opts.dest)).trim();
  return { commit };
}
