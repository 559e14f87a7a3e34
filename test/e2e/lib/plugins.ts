/**
 * Plugin sources the end-to-end tests commit into real git repositories. Each is a complete
 * plugin directory (files relative to the repo root or to `path`).
 */

/**
 * Continuous task: OUT = 2 × SETPOINT every cycle; cleanup() writes `parameters.marker`. It also
 * prints with console.log, which must reach the server's log as JSON, not as a raw line.
 */
export const COUNTER_TASK: Record<string, string> = {
  "counter.ts": `import { TaskBase } from "iocmng";

export default class Counter extends TaskBase {
  async initialize() {
    console.log("counter: plain console output");
    this.setPv("OUT", 0);
  }
  async execute() {
    const sp = Number(this.getPv("SETPOINT"));
    this.setPv("OUT", sp * 2);
    this.setPv("GAIN_SEEN", Number(this.parameters.gain ?? -1));
  }
  async cleanup() {
    const marker = this.parameters.marker;
    if (typeof marker === "string") await Bun.write(marker, "cleaned up");
  }
}
`,
  "config.yaml": `parameters:
  mode: continuous
  interval: 0.05
  gain: 1
pvs:
  inputs:
    SETPOINT:
      type: float
      value: 1.5
      prec: 2
      unit: mm
  outputs:
    OUT:
      type: float
      value: 0
    GAIN_SEEN:
      type: float
      value: 0
`,
};

/** Triggered task: execute() takes a while, then counts into DONE (put-completion test). */
export const TRIGGERED_TASK: Record<string, string> = {
  "trig.ts": `import { TaskBase } from "iocmng";

export default class Trig extends TaskBase {
  private n = 0;
  initialize() {}
  async execute() {
    await Bun.sleep(Number(this.parameters.work_ms ?? 700));
    this.n += 1;
    this.setPv("DONE", this.n);
  }
  cleanup() {}
}
`,
  "config.yaml": `parameters:
  mode: triggered
  work_ms: 700
pvs:
  outputs:
    DONE:
      type: int
      value: 0
`,
};

/** Job returning data built from its parameters. */
export const DIAG_JOB: Record<string, string> = {
  "diag.ts": `import { JobBase, JobResult } from "iocmng";

export default class Diag extends JobBase {
  initialize() {}
  async execute() {
    this.setPv("SYSTEM_NAME", "healthy");
    if (this.parameters.sleep_ms) await Bun.sleep(Number(this.parameters.sleep_ms));
    return new JobResult({ success: true, data: { answer: 42, who: this.parameters.who ?? null }, message: "Diagnostics OK" });
  }
}
`,
  "config.yaml": `parameters:
  who: default
pvs:
  outputs:
    SYSTEM_NAME:
      type: string
      value: ""
`,
};

/**
 * Continuous task whose execute() never returns control (a busy loop), from the cycle given by
 * `parameters.hang_at` (0 = the very first execute()).
 */
export const HUNG_TASK: Record<string, string> = {
  "hung.ts": `import { TaskBase } from "iocmng";

export default class Hung extends TaskBase {
  private n = 0;
  initialize() {}
  execute() {
    if (this.n++ >= Number(this.parameters.hang_at ?? 0)) {
      for (;;) {}
    }
  }
  cleanup() {}
}
`,
  "config.yaml": `parameters:
  mode: continuous
  interval: 0.1
`,
};

const TASK_OK = `import { TaskBase } from "iocmng";
export default class Ok extends TaskBase {
  initialize() {}
  execute() {}
  cleanup() {}
}
`;
const CONFIG_OK = "parameters:\n  mode: continuous\n  interval: 1\n";

/** One repository per validation step, each failing exactly that step (for POST /tasks). */
export const FAILING: Record<string, { files: Record<string, string>; path?: string }> = {
  path: { files: { "ok.ts": TASK_OK, "config.yaml": CONFIG_OK }, path: "no/such/dir" },
  config: {
    files: {
      "ok.ts": TASK_OK,
      "config.yaml":
        "parameters:\n  mode: continuous\npvs:\n  inputs:\n    X:\n      type: quaternion\n",
    },
  },
  dependencies: {
    files: {
      "ok.ts": TASK_OK,
      "config.yaml": CONFIG_OK,
      "package.json": JSON.stringify({
        name: "needs-missing-dep",
        dependencies: { "iocmng-e2e-missing": "file:./does-not-exist" },
      }),
    },
  },
  syntax: {
    files: {
      "bad.ts": `import { TaskBase } from "iocmng";\nexport default class Bad extends TaskBase {\n  initialize( {\n}\n`,
      "config.yaml": CONFIG_OK,
    },
  },
  import: {
    files: {
      "boom.ts": `import { TaskBase } from "iocmng";\nthrow new Error("boom at import time");\nexport default class Boom extends TaskBase { initialize() {} execute() {} cleanup() {} }\n`,
      "config.yaml": CONFIG_OK,
    },
  },
  inheritance: {
    files: {
      "plain.ts": "export default class Plain {\n  execute() {}\n}\n",
      "config.yaml": CONFIG_OK,
    },
  },
  abstract: {
    files: {
      "partial.ts": `import { TaskBase } from "iocmng";\n// @ts-expect-error execute and cleanup are missing on purpose\nexport default class Partial extends TaskBase {\n  initialize() {}\n}\n`,
      "config.yaml": CONFIG_OK,
    },
  },
  start: {
    files: {
      "fails.ts": `import { TaskBase } from "iocmng";\nexport default class Fails extends TaskBase {\n  initialize() { throw new Error("sensor not found"); }\n  execute() {}\n  cleanup() {}\n}\n`,
      "config.yaml": CONFIG_OK,
    },
  },
};

/** A task that misbehaves in every way a plugin can try to take the server down with it. */
export const ROGUE_TASK: Record<string, string> = {
  "rogue.ts": `import { TaskBase } from "iocmng";

export default class Rogue extends TaskBase {
  private n = 0;
  initialize() {}
  execute() {
    this.n++;
    if (this.n === 2) Promise.reject(new Error("unhandled rejection from a plugin"));
    if (this.n === 3) setTimeout(() => { throw new Error("uncaught error in a timer"); }, 0);
    if (this.n === 4) throw new Error("a rather long error message that will not fit in a CA string");
    if (this.n === 6) process.exit(3);
  }
  cleanup() {}
}
`,
  "config.yaml": "parameters:\n  mode: continuous\n  interval: 0.1\n",
};

/**
 * Continuous task whose initialize() waits (up to a minute) for the file named by parameter
 * `gate`: a test sees the add's steps before `start` while the add is still in flight.
 */
export const GATED_TASK: Record<string, string> = {
  "slow.ts": `import { TaskBase } from "iocmng";
import { existsSync } from "node:fs";

export default class Slow extends TaskBase {
  async initialize() {
    const gate = String(this.parameters.gate);
    for (let i = 0; i < 1200 && !existsSync(gate); i++) await Bun.sleep(50);
    this.setPv("OUT", 1);
  }
  async execute() {
    this.setPv("OUT", Number(this.getPv("OUT")) + 1);
  }
  cleanup() {}
}
`,
  "config.yaml": `parameters:
  mode: continuous
  interval: 0.05
pvs:
  outputs:
    OUT:
      type: float
      value: 0
`,
};
