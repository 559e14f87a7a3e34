/**
 * Running a C load client on Debian's libca against a server on loopback, for the CA benches
 * (ca-server.ts, product.ts): the client finds the server only through 127.0.0.1 and its port.
 */
import { join } from "node:path";

/** Debian's libca, which the C clients link against (no headers needed: they declare what they use). */
export const LIBCA = "/usr/lib/x86_64-linux-gnu/libca.so.4.13.5";

/** Compiles the C client `src` (a file next to this one) to `out`, linked against libca; throws with gcc's output. */
export function buildCaClient(out: string, src: string): void {
  const r = Bun.spawnSync(["gcc", "-O2", "-o", out, join(import.meta.dir, src), LIBCA]);
  if (r.exitCode !== 0) throw new Error(`building ${src}: ${r.stderr.toString()}`);
}

/** The environment of a libca client that talks to the server on 127.0.0.1:`port` only. */
export function caClientEnv(port: number): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(port),
  };
}

/** Runs `bin args…` against the server on `port`; its trimmed stdout, or throws with its stderr. */
export async function runCaClient(bin: string, port: number, args: string[]): Promise<string> {
  const p = Bun.spawn([bin, ...args], { env: caClientEnv(port), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`${bin} ${args.join(" ")} failed (${code}): ${err}`);
  return out.trim();
}

/** The median (upper of the two middle values for an even count). */
export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
