/**
 * How a plugin process's end reads in MESSAGE (which limit, when we can tell), and the host of a
 * plugin listed without a process.
 */
import type { HostReply, PluginHost } from "../host.ts";
import type { SandboxLimits } from "./sandbox.ts";

/** A plugin listed without a process (quarantined at boot): every request is refused. */
export class EndedHost implements PluginHost {
  constructor(private readonly why: string) {}
  async waitReady(): Promise<void> {}
  readonly isUnresponsive = false;
  readonly isEnded = true;
  async request(): Promise<HostReply> {
    return { ok: false, message: this.why };
  }
  terminate(): void {}
}

/** Human reading of an exit status for MESSAGE (which limit, when we can tell). */
export function exitReason(
  code: number | null,
  signal: string | null,
  fatal: string | null,
  limits: SandboxLimits,
  stderrTail: string,
): string {
  if (fatal === "memory" || code === 70) return `memory limit (${limits.memoryMiB} MiB) reached`;
  if (signal === "SIGXCPU") return `CPU time limit (${limits.cpuSeconds} s) reached`;
  if (/out of memory|OutOfMemory|MemoryExhaustion/i.test(stderrTail)) {
    return `memory limit (${limits.memoryMiB} MiB) reached (${signal ?? `exit ${code}`})`;
  }
  if (code === 78) return `sandbox setup failed: ${stderrTail.trim().split("\n").pop() ?? ""}`;
  if (signal) return `plugin process killed by ${signal}`;
  return `plugin process exited (code ${code ?? "?"})`;
}
