/**
 * What a git URL and a branch name may look like (only https/ssh/scp-style/file URLs, no option
 * injection, no `ext::`/`fd::` transports). Pure checks with operator-readable messages, shared by
 * REST adds, the config file's plugin list and the cloner; a leaf module.
 */

/** Longest accepted git URL. */
export const MAX_GIT_URL = 2048;

const SCP_RE = /^[A-Za-z0-9._~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:(?!\/\/)[^:\s][^\s]*$/;

/** Checks a git URL; returns an error message (what is wrong and what is accepted) or null. */
export function checkGitUrl(url: unknown): string | null {
  const accepted = "accepted: https://host/repo, ssh://host/repo, user@host:path, file:///path";
  if (typeof url !== "string" || url.length === 0) return `git_url is empty (${accepted})`;
  if (url.length > MAX_GIT_URL) return `git_url longer than ${MAX_GIT_URL} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\s\x00-\x1f\x7f]/.test(url)) return "git_url contains whitespace or control characters";
  if (url.startsWith("-")) return "git_url must not start with '-'";
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(url)) {
    return `git_url uses a git remote helper transport ("${url.split("::")[0]}::"), which is not allowed (${accepted})`;
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return `git_url is not a valid URL (${accepted})`;
    }
    if (scheme === "https" || scheme === "ssh") {
      if (!u.hostname) return "git_url has no host";
      if (u.password) return "git_url must not contain a password or token: pass it as `pat`";
      if (scheme === "https" && u.username) {
        return "git_url must not contain credentials: pass the token as `pat`";
      }
      return null;
    }
    if (scheme === "file") {
      if (u.hostname && u.hostname !== "localhost") return "file:// git_url must be a local path";
      if (!u.pathname.startsWith("/")) return "file:// git_url must be an absolute path";
      return null;
    }
    return `git_url scheme "${scheme}://" is not allowed (${accepted})`;
  }
  if (SCP_RE.test(url)) return null;
  return `git_url is not an accepted git URL (${accepted})`;
}

/** Checks a branch or tag name; returns an error message or null. */
export function checkBranch(branch: unknown): string | null {
  if (branch === undefined) return null;
  if (typeof branch !== "string" || branch.length === 0 || branch.length > 255) {
    return "branch must be a non-empty string of at most 255 characters";
  }
  if (
    branch.startsWith("-") ||
    branch.startsWith("/") ||
    branch.endsWith("/") ||
    branch.endsWith(".lock") ||
    branch.includes("..") ||
    branch.includes("@{") ||
    branch.includes("//") ||
    !/^[A-Za-z0-9._/+-]+$/.test(branch)
  ) {
    return `branch "${branch.slice(0, 80)}" is not a valid branch or tag name`;
  }
  return null;
}
