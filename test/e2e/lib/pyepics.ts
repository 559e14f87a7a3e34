/**
 * pyepics as the operator: runs a short Python program with /usr/bin/python3 against one server
 * and returns what it printed as JSON on its last line. The preamble gives `get`, `put`, `absent`, `out`.
 */
const PREAMBLE = `
import json, sys, time
import epics
from epics import ca
def get(name, **kw):
    v = epics.caget(name, timeout=10, **kw)
    if v is None:
        raise SystemExit("caget %s: no answer" % name)
    try:
        return v.tolist()
    except AttributeError:
        return v
def put(name, value, wait=False, timeout=30):
    r = epics.caput(name, value, wait=wait, timeout=timeout)
    return r
def absent(name, wait=2.0):
    p = epics.PV(name)
    connected = p.wait_for_connection(timeout=wait)
    p.disconnect()
    return not connected
def out(x):
    print(json.dumps(x), flush=True)
`;

/** Result of a Python run: exit code, parsed last stdout line, and raw stderr. */
export interface PyRun {
  code: number;
  result: unknown;
  stdout: string;
  stderr: string;
}

/** Runs `body` (Python, indented at top level) with the CA client env of one server. */
export async function py(
  body: string,
  caEnv: Record<string, string>,
  timeoutMs = 60_000,
): Promise<PyRun> {
  const proc = Bun.spawn(["/usr/bin/python3", "-c", `${PREAMBLE}\n${body}`], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...caEnv },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill(9), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  const lines = stdout
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "");
  let result: unknown;
  const last = lines.at(-1);
  if (last !== undefined) {
    try {
      result = JSON.parse(last);
    } catch {
      result = undefined;
    }
  }
  return { code, result, stdout, stderr };
}
