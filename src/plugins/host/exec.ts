/**
 * The hidden `__exec` mode of the executable: `iocmng __exec <program> <args…>` sets the
 * parent-death signal, then replaces itself with the program (execvpe). What the server runs this
 * way (git clones) is killed by the kernel when the server dies, even by `kill -9`, instead of
 * hanging on with its network connection (and the token it was given on fd 3).
 */
import { execvpe, getppid, PR_SET_PDEATHSIG, prctl } from "../../../ffi/libc.ts";
import { EXEC_PARENT_ENV } from "./exec-env.ts";

export function runExec(argv: readonly string[]): never {
  const parent = Number(process.env[EXEC_PARENT_ENV]);
  if (prctl(PR_SET_PDEATHSIG, 9) !== 0) process.stderr.write("iocmng __exec: no PDEATHSIG\n");
  // The server may have died before the line above took effect.
  if (getppid() !== parent) process.exit(125);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== EXEC_PARENT_ENV) env[k] = v;
  }
  const err = execvpe(argv, env);
  process.stderr.write(`iocmng __exec: cannot run ${argv[0] ?? "?"} (errno ${err})\n`);
  process.exit(127);
}
