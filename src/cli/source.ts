import { statSync } from "node:fs";
import { resolve } from "node:path";
import { CliError } from "./errors.ts";

/** A plugin source given on the command line: a local directory or a git URL. */
export type PluginSource = { dir: string } | { git_url: string };

/** URL schemes and scp-style `user@host:path` are git URLs; anything else is a local path. */
export function looksLikeGitUrl(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(s) || /^[^/\s@]+@[^/\s:]+:/.test(s);
}

/** Classifies `arg`; a local path must be an existing directory. */
export function pluginSource(arg: string, cwd: string): PluginSource {
  if (looksLikeGitUrl(arg)) return { git_url: arg };
  const dir = resolve(cwd, arg);
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new CliError(`${dir}: no such directory`);
  }
  if (!isDir) throw new CliError(`${dir} is not a directory`);
  return { dir };
}

/** "step 'x' failed: why" (without repeating the step when the message already starts with it). */
export function failureLine(report: { failedStep?: string; message: string }): string {
  const step = report.failedStep;
  if (step === undefined) return report.message;
  const why = report.message.startsWith(`${step}: `)
    ? report.message.slice(step.length + 2)
    : report.message;
  return `step '${step}' failed: ${why}`;
}
