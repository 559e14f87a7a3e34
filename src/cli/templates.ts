import { VERSION } from "../version.ts";

/** What `iocmng new` writes: relative file name → content. */
export type Scaffold = Record<string, string>;

/** Options of {@link scaffoldPlugin}. */
export interface ScaffoldOptions {
  kind: "task" | "job";
  name: string;
  mode: "continuous" | "triggered";
}

/** `my-plugin_2` → `MyPlugin2`; a leading digit gets a `Plugin` prefix to stay an identifier. */
export function classNameFor(name: string): string {
  const pascal = name
    .split(/[-_]+/)
    .filter((p) => p.length > 0)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join("");
  const base = pascal.length === 0 ? "Plugin" : pascal;
  return /^[0-9]/.test(base) ? `Plugin${base}` : base;
}

function taskSource(cls: string, mode: ScaffoldOptions["mode"]): string {
  const what =
    mode === "continuous"
      ? "runs execute() every `interval` seconds"
      : "runs execute() once each time an operator writes 1 to the RUN PV";
  return `import { TaskBase } from "iocmng";

/**
 * ${cls}: a ${mode} task (${what}).
 * It moves READING toward the operator's SETPOINT by at most \`step\` per execution.
 */
export class ${cls} extends TaskBase {
  override async initialize(): Promise<void> {
    this.logger.info({ step: this.parameters.step }, "initialised");
  }

  override async execute(): Promise<void> {
    const setpoint = Number(this.getPv("SETPOINT"));
    const reading = Number(this.getPv("READING"));
    const step = Number(this.parameters.step ?? 1);
    const delta = setpoint - reading;
    this.setPv("READING", Math.abs(delta) <= step ? setpoint : reading + Math.sign(delta) * step);
  }

  override async cleanup(): Promise<void> {
    this.logger.info("stopped");
  }
}
`;
}

function taskConfig(mode: ScaffoldOptions["mode"]): string {
  return `# Parameters reach the plugin as this.parameters; REST "parameters" override them.
parameters:
  mode: ${mode}        # continuous | triggered
  interval: 1.0${mode === "continuous" ? "         " : "         # unused by triggered tasks"}
  step: 1.0

# PVs served over Channel Access as <prefix>:<NAME> next to the default ones
# (ENABLE, STATUS, MESSAGE, CYCLE_COUNT, RUN).
pvs:
  inputs:              # writable by operators; autosaved
    SETPOINT:
      type: float
      value: 0.0
      unit: "mm"
      prec: 2
      low: -100
      high: 100
  outputs:             # written by the plugin
    READING:
      type: float
      value: 0.0
      unit: "mm"
      prec: 2
`;
}

function taskTest(cls: string, file: string): string {
  return `import { expect, test } from "bun:test";
import { runLifecycle } from "iocmng/testing";
import { ${cls} } from "./${file}";

test("READING moves toward SETPOINT by at most step per execution", async () => {
  const run = await runLifecycle(${cls}, {
    parameters: { step: 2 },
    pvs: { SETPOINT: 5, READING: 0 },
    cycles: 2,
  });
  expect(run.error).toBeUndefined();
  expect(run.pvs.READING).toBe(4);
});

test("READING stops exactly at SETPOINT", async () => {
  const run = await runLifecycle(${cls}, {
    parameters: { step: 2 },
    pvs: { SETPOINT: 5, READING: 0 },
    cycles: 5,
  });
  expect(run.pvs.READING).toBe(5);
});
`;
}

function jobSource(cls: string): string {
  return `import { JobBase } from "iocmng";

/** ${cls}: a job, run through REST (POST /api/v1/jobs/<name>/run); returns a result. */
export class ${cls} extends JobBase {
  override async initialize(): Promise<void> {
    this.logger.info("ready");
  }

  override async execute() {
    const count = Number(this.parameters.count ?? 3);
    if (!Number.isInteger(count) || count < 1) {
      return { success: false, data: null, message: \`count must be a positive integer\` };
    }
    let sum = 0;
    for (let i = 1; i <= count; i++) sum += i;
    this.setPv("LAST_SUM", sum);
    return { success: true, data: { count, sum }, message: \`sum of 1..\${count} = \${sum}\` };
  }
}
`;
}

const JOB_CONFIG = `# Parameters reach the job as this.parameters; REST "parameters" override them.
parameters:
  count: 3

# PVs next to the default ones (STATUS, MESSAGE).
pvs:
  outputs:
    LAST_SUM:
      type: int
      value: 0
`;

function jobTest(cls: string, file: string): string {
  return `import { expect, test } from "bun:test";
import { runLifecycle } from "iocmng/testing";
import { ${cls} } from "./${file}";

test("returns the sum and publishes it on LAST_SUM", async () => {
  const run = await runLifecycle(${cls}, { parameters: { count: 4 }, pvs: { LAST_SUM: 0 } });
  expect(run.result?.success).toBe(true);
  expect(run.result?.data).toEqual({ count: 4, sum: 10 });
  expect(run.pvs.LAST_SUM).toBe(10);
});

test("a bad count is a failed result, not an exception", async () => {
  const run = await runLifecycle(${cls}, { parameters: { count: -1 }, pvs: { LAST_SUM: 0 } });
  expect(run.result?.success).toBe(false);
});
`;
}

function readme(o: ScaffoldOptions, cls: string, file: string): string {
  const endpoint = o.kind === "task" ? "tasks" : "jobs";
  const try_ =
    o.kind === "job"
      ? `curl -X POST http://localhost:8080/api/v1/jobs/${o.name}/run`
      : o.mode === "triggered"
        ? `caput -c <prefix>:RUN 1     # or: python3 -c "import epics; epics.caput('<prefix>:RUN', 1, wait=True)"`
        : `camonitor <prefix>:READING`;
  return `# ${o.name}

An iocmng ${o.kind === "task" ? `${o.mode} task` : "job"} (\`${cls}\` in \`${file}\`).

## Develop

\`\`\`bash
bun install            # SDK types + test harness (package "iocmng")
bun test               # unit tests: runLifecycle() runs the plugin without a server
iocmng validate .      # the server's full validation pipeline, without a server
iocmng run .           # serve its PVs over Channel Access locally (no REST)
\`\`\`

## Deploy

Commit this directory to a git repository, then:

\`\`\`bash
curl -X POST http://localhost:8080/api/v1/${endpoint} -H "Content-Type: application/json" \\
  -d '{"name": "${o.name}", "git_url": "https://example.org/you/repo.git", "path": "."}'
${try_}
curl -X DELETE http://localhost:8080/api/v1/${endpoint}/${o.name}
\`\`\`

PVs and default parameters are declared in \`config.yaml\`.
`;
}

/** The files of a new plugin directory (source, config.yaml, package.json, test, README). */
export function scaffoldPlugin(o: ScaffoldOptions): Scaffold {
  const cls = classNameFor(o.name);
  const file = `${o.name}.ts`;
  const pkg = {
    name: o.name.toLowerCase(),
    version: "0.1.0",
    private: true,
    type: "module",
    // The file the server imports (explicit, so helper modules next to it are never mistaken for it).
    module: file,
    scripts: { test: "bun test", validate: "iocmng validate ." },
    // devDependencies only: the server supplies the real "iocmng" module at run time and installs
    // plugin dependencies without dev ones.
    devDependencies: { iocmng: `^${VERSION}`, "@types/bun": "^1.4.0", typescript: "^5.9.0" },
  };
  const tsconfig = {
    compilerOptions: {
      target: "ESNext",
      module: "ESNext",
      moduleResolution: "bundler",
      types: ["bun"],
      strict: true,
      noImplicitOverride: true,
      allowImportingTsExtensions: true,
      noEmit: true,
      skipLibCheck: true,
    },
  };
  return {
    [file]: o.kind === "task" ? taskSource(cls, o.mode) : jobSource(cls),
    "config.yaml": o.kind === "task" ? taskConfig(o.mode) : JOB_CONFIG,
    [`${o.name}.test.ts`]: o.kind === "task" ? taskTest(cls, file) : jobTest(cls, file),
    "package.json": `${JSON.stringify(pkg, null, 2)}\n`,
    "tsconfig.json": `${JSON.stringify(tsconfig, null, 2)}\n`,
    "README.md": readme(o, cls, file),
    ".gitignore": "node_modules/\n",
  };
}
