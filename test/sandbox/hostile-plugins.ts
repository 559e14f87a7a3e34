/**
 * Hostile plugin sources for the sandbox tests: each one attacks the server in one way. They are
 * committed into real git repositories by the tests. Parameters carry what a real attacker would
 * find out anyway (the server's pid is in /proc).
 */

const TASK_CONFIG = (interval: number, extra = ""): string =>
  `parameters:\n  mode: continuous\n  interval: ${interval}\n${extra}`;

/** execute() keeps JS objects forever: the heap grows until the memory limit. */
export const HEAP_HOG = {
  "hog.ts": `import { TaskBase } from "iocmng";
const keep: unknown[] = [];
export default class Hog extends TaskBase {
  initialize() {}
  execute() { for (let i = 0; i < 20; i++) keep.push(new Array(250_000).fill(i + Math.random())); }
  cleanup() {}
}
`,
  "config.yaml": TASK_CONFIG(0.01),
};

/** execute() keeps 32 MiB buffers forever (memory outside the JS heap). */
export const BUFFER_HOG = {
  "hog.ts": `import { TaskBase } from "iocmng";
const keep: Buffer[] = [];
export default class BufHog extends TaskBase {
  initialize() {}
  execute() { keep.push(Buffer.alloc(32 << 20, 1)); }
  cleanup() {}
}
`,
  "config.yaml": TASK_CONFIG(0.01),
};

/** Tries to kill the server: kill -9 through a shell, process.kill, and its parent pid. */
export const SERVER_KILLER = {
  "kill.ts": `import { execSync } from "node:child_process";
import { TaskBase } from "iocmng";
export default class Killer extends TaskBase {
  initialize() {}
  execute() {
    const pid = Number(this.parameters.server_pid);
    for (const cmd of ["kill -9 " + pid, "kill -9 " + process.ppid, "kill -TERM " + pid]) {
      try { execSync(cmd, { stdio: "ignore" }); } catch {}
    }
    try { process.kill(pid, 9); } catch {}
  }
  cleanup() {}
}
`,
  "config.yaml": TASK_CONFIG(0.1),
};

/** process.exit (refused), then the low-level exit that really ends its process. */
export const EXITER = {
  "exit.ts": `import { TaskBase } from "iocmng";
export default class Exiter extends TaskBase {
  initialize() {}
  execute() {
    try { process.exit(3); } catch {}
    (process as unknown as { reallyExit(c: number): void }).reallyExit(3);
  }
  cleanup() {}
}
`,
  "config.yaml": TASK_CONFIG(0.1),
};

/** Spins in initialize(): the add never finishes on its own. */
export const INIT_SPINNER = {
  "spin.ts": `import { TaskBase } from "iocmng";
export default class Spinner extends TaskBase {
  initialize() { for (;;) {} }
  execute() {}
  cleanup() {}
}
`,
};

/** Starts processes in a loop, some in a new session (escaping its process group). */
export const FORKER = {
  "fork.ts": `import { TaskBase } from "iocmng";
export default class Forker extends TaskBase {
  initialize() {}
  execute() {
    const tag = String(this.parameters.tag);
    for (let i = 0; i < 20; i++) {
      try {
        Bun.spawn(["sleep", tag], { stdio: ["ignore", "ignore", "ignore"], detached: i % 2 === 0 });
      } catch {}
    }
  }
  cleanup() {}
}
`,
  "config.yaml": TASK_CONFIG(0.05),
};

/**
 * Looks for marker secrets everywhere it can: /proc/*\/environ and cmdline of every process, and
 * the memory of the server and of every process whose maps it can read. FOUND lists the kinds of
 * marker found ("none" when nothing), SCANS counts completed scans.
 */
export const SECRET_READER = {
  "reader.ts": `import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { TaskBase } from "iocmng";
const KINDS = ["sbxAPI", "sbxENV", "sbxPAT"];
function scanText(t: string, found: Set<string>) { for (const k of KINDS) if (t.includes(k)) found.add(k); }
function scanMem(pid: number, found: Set<string>, budget: { left: number }) {
  let maps: string;
  try { maps = readFileSync("/proc/" + pid + "/maps", "utf8"); } catch { return; }
  let fd: number;
  try { fd = openSync("/proc/" + pid + "/mem", "r"); } catch { return; }
  try {
    for (const line of maps.split("\\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw/.exec(line);
      if (!m) continue;
      const start = Number.parseInt(m[1], 16), end = Number.parseInt(m[2], 16);
      for (let at = start; at < end && budget.left > 0; at += 1 << 20) {
        const n = Math.min(1 << 20, end - at);
        const buf = Buffer.alloc(n);
        try { readSync(fd, buf, 0, n, at); } catch { break; }
        budget.left -= n;
        scanText(buf.toString("latin1"), found);
      }
    }
  } finally { closeSync(fd); }
}
export default class Reader extends TaskBase {
  scans = 0;
  initialize() {}
  execute() {
    const found = new Set<string>();
    const budget = { left: 256 << 20 };
    const server = Number(this.parameters.server_pid);
    scanMem(server, found, budget);
    for (const n of readdirSync("/proc")) {
      if (!/^\\d+$/.test(n)) continue;
      for (const f of ["environ", "cmdline"]) {
        try { scanText(readFileSync("/proc/" + n + "/" + f, "latin1"), found); } catch {}
      }
      if (Number(n) !== process.pid && Number(n) !== server) scanMem(Number(n), found, budget);
    }
    scanText(JSON.stringify(process.env), found);
    this.scans++;
    this.setPv("FOUND", found.size === 0 ? "none" : [...found].join(","));
    this.setPv("SCANS", this.scans);
  }
  cleanup() {}
}
`,
  "config.yaml": `${TASK_CONFIG(0.2)}pvs:
  outputs:
    FOUND:
      type: string
      value: ""
    SCANS:
      type: int
      value: 0
`,
};
