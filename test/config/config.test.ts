import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ConfigError,
  loadConfig,
  MAX_SERVER_CONFIG_BYTES,
  parseServerConfigFile,
  pvPrefixFor,
  type ServerConfig,
} from "../../src/config.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "iocmng-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function file(text: string | Uint8Array, name?: string): Promise<string> {
  const p = join(dir, name ?? `f${n++}.yaml`);
  await writeFile(p, text);
  return p;
}

function configError(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("environment variables", () => {
  test("defaults with an empty environment", () => {
    expect(loadConfig({})).toEqual({
      host: "0.0.0.0",
      port: 8080,
      pluginsDir: "./data/plugins",
      stateDir: "./data/state",
      logLevel: "info",
      prefix: null,
      beamline: null,
      namespace: null,
      beamlineValues: null,
      apiToken: null,
      disableDevices: true,
      plugins: [],
      configFile: null,
      beamlineConfigFile: null,
      accessSecurityFile: null,
      accessHostMode: "names",
      accessGroups: null,
    });
  });

  test("access security: IOCMNG_ACF, EPICS_CAS_USE_HOST_NAMES, access_groups", () => {
    const cfg = loadConfig({ IOCMNG_ACF: "/etc/iocmng/rules.acf", EPICS_CAS_USE_HOST_NAMES: "NO" });
    expect(cfg.accessSecurityFile).toBe("/etc/iocmng/rules.acf");
    expect(cfg.accessHostMode).toBe("addresses");
    expect(() => loadConfig({ EPICS_CAS_USE_HOST_NAMES: "maybe" })).toThrow(
      "EPICS_CAS_USE_HOST_NAMES must be a boolean",
    );
    const file = parseServerConfigFile(
      "access_security_file: rules.acf\naccess_groups: [CTRL, DEFAULT]\n",
      "f.yaml",
    );
    expect(file.accessSecurityFile).toBe("rules.acf");
    expect(file.accessGroups).toEqual(["CTRL", "DEFAULT"]);
    expect(() => parseServerConfigFile("access_groups: CTRL\n", "f.yaml")).toThrow(
      "f.yaml: access_groups: expected a list of access security group names",
    );
    expect(() => parseServerConfigFile("access_groups: ['a b']\n", "f.yaml")).toThrow(
      "access_groups",
    );
  });

  test("every variable is read", () => {
    const cfg = loadConfig({
      IOCMNG_HOST: "127.0.0.1",
      IOCMNG_PORT: "9090",
      IOCMNG_PLUGINS_DIR: "/srv/plugins",
      IOCMNG_STATE_DIR: "/srv/state",
      IOCMNG_LOG_LEVEL: "DEBUG",
      IOCMNG_API_TOKEN: "  s3cret-token\n",
      IOCMNG_DISABLE_OPHYD: "false",
      IOCMNG_PREFIX: "SPARC:MGR",
    });
    expect(cfg.host).toBe("127.0.0.1");
    expect(cfg.port).toBe(9090);
    expect(cfg.pluginsDir).toBe("/srv/plugins");
    expect(cfg.stateDir).toBe("/srv/state");
    expect(cfg.logLevel).toBe("debug");
    expect(cfg.apiToken).toBe("s3cret-token");
    expect(cfg.disableDevices).toBe(false);
    expect(cfg.prefix).toBe("SPARC:MGR");
  });

  test("empty values count as unset", () => {
    const cfg = loadConfig({
      IOCMNG_PORT: "",
      IOCMNG_HOST: " ",
      IOCMNG_API_TOKEN: "",
      IOCMNG_PREFIX: "",
    });
    expect(cfg.prefix).toBeNull();
    expect(cfg.port).toBe(8080);
    expect(cfg.host).toBe("0.0.0.0");
    expect(cfg.apiToken).toBeNull();
  });

  test("IOCMNG_DISABLE_DEVICES wins over the seed's IOCMNG_DISABLE_OPHYD", () => {
    expect(
      loadConfig({ IOCMNG_DISABLE_OPHYD: "false", IOCMNG_DISABLE_DEVICES: "yes" }).disableDevices,
    ).toBe(true);
    expect(loadConfig({ IOCMNG_DISABLE_DEVICES: "0" }).disableDevices).toBe(false);
    expect(loadConfig({ IOCMNG_DISABLE_OPHYD: "OFF" }).disableDevices).toBe(false);
  });

  test.each([
    ["x", "IOCMNG_PORT must be an integer 1..65535, got 'x'"],
    ["0", "IOCMNG_PORT must be an integer 1..65535, got '0'"],
    ["65536", "got '65536'"],
    ["80.5", "got '80.5'"],
    ["-1", "got '-1'"],
    ["8080x", "got '8080x'"],
    ["1e3", "got '1e3'"],
  ])("bad port %p", (port, msg) => {
    expect(configError({ IOCMNG_PORT: port })).toContain(msg);
  });

  test("bad log level, boolean, host, prefix and token are refused with the variable's name", () => {
    expect(configError({ IOCMNG_LOG_LEVEL: "verbose" })).toBe(
      "IOCMNG_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got 'verbose'",
    );
    expect(configError({ IOCMNG_DISABLE_OPHYD: "maybe" })).toContain(
      "IOCMNG_DISABLE_OPHYD must be a boolean (true/false, 1/0, yes/no, on/off), got 'maybe'",
    );
    expect(configError({ IOCMNG_DISABLE_DEVICES: "2" })).toContain(
      "IOCMNG_DISABLE_DEVICES must be a boolean",
    );
    expect(configError({ IOCMNG_HOST: "http://example.org" })).toContain(
      "IOCMNG_HOST must be a host name or IP address",
    );
    expect(configError({ IOCMNG_HOST: "a b" })).toContain("IOCMNG_HOST");
    expect(configError({ IOCMNG_PREFIX: "BAD PREFIX" })).toContain(
      "IOCMNG_PREFIX must be a PV name fragment",
    );
    expect(configError({ IOCMNG_PREFIX: "ENDS:" })).toContain("not ending in ':'");
    expect(configError({ IOCMNG_PREFIX: "A.B" })).toContain(
      "IOCMNG_PREFIX must be a PV name fragment",
    );
    expect(configError({ IOCMNG_API_TOKEN: "two words" })).toContain(
      "IOCMNG_API_TOKEN must be a single word",
    );
  });

  test("the token never appears in an error message", () => {
    const msg = configError({ IOCMNG_API_TOKEN: "tok en-SECRET" });
    expect(msg).not.toContain("SECRET");
  });
});

describe("IOCMNG_CONFIG file", () => {
  test("server settings and declarative plugins", async () => {
    const p = await file(`
prefix: "SPARC:IOCMNG"
host: 127.0.0.1
port: 8181
plugins_dir: /data/p
state_dir: /data/s
log_level: warn
disable_devices: false
plugins:
  - name: temp-monitor
    kind: task
    git_url: https://gitlab.example.org/ctrl/temp-monitor.git
    branch: v1.2.0
    path: src/monitor
    parameters: {threshold: 80}
    auto_start: true
    pat_env: GITLAB_TOKEN
  - name: diag
    kind: job
    git_url: file:///srv/repos/diag
tasks:
  - name: beam-watch
    git_url: git@github.com:org/beam.git
jobs:
  - name: nightly
    kind: job
    git_url: ssh://git@host/org/nightly.git
`);
    const cfg = loadConfig({ IOCMNG_CONFIG: p });
    expect(cfg.configFile).toBe(p);
    expect(cfg.prefix).toBe("SPARC:IOCMNG");
    expect(cfg.host).toBe("127.0.0.1");
    expect(cfg.port).toBe(8181);
    expect(cfg.pluginsDir).toBe("/data/p");
    expect(cfg.stateDir).toBe("/data/s");
    expect(cfg.logLevel).toBe("warn");
    expect(cfg.disableDevices).toBe(false);
    expect(cfg.plugins).toEqual([
      {
        name: "temp-monitor",
        kind: "task",
        git_url: "https://gitlab.example.org/ctrl/temp-monitor.git",
        branch: "v1.2.0",
        path: "src/monitor",
        parameters: { threshold: 80 },
        auto_start: true,
        pat_env: "GITLAB_TOKEN",
      },
      { name: "diag", kind: "job", git_url: "file:///srv/repos/diag" },
      { name: "beam-watch", kind: "task", git_url: "git@github.com:org/beam.git" },
      { name: "nightly", kind: "job", git_url: "ssh://git@host/org/nightly.git" },
    ]);
  });

  test("environment variables win over the file", async () => {
    const p = await file("prefix: FILE\nport: 8181\nhost: 127.0.0.1\nlog_level: warn\n");
    const cfg = loadConfig({
      IOCMNG_CONFIG: p,
      IOCMNG_PORT: "9191",
      IOCMNG_PREFIX: "ENV",
      IOCMNG_LOG_LEVEL: "error",
    });
    expect(cfg.port).toBe(9191);
    expect(cfg.prefix).toBe("ENV");
    expect(cfg.logLevel).toBe("error");
    expect(cfg.host).toBe("127.0.0.1");
  });

  test("relative paths in the file are relative to the file's directory", async () => {
    const sub = join(dir, "rel");
    await mkdir(sub, { recursive: true });
    const p = join(sub, "iocmng.yaml");
    await writeFile(p, "plugins_dir: data/plugins\nstate_dir: ../state\n");
    const cfg = loadConfig({ IOCMNG_CONFIG: p });
    expect(cfg.pluginsDir).toBe(join(sub, "data", "plugins"));
    expect(cfg.stateDir).toBe(join(dir, "state"));
    expect(loadConfig({ IOCMNG_CONFIG: p, IOCMNG_STATE_DIR: "rel/env" }).stateDir).toBe("rel/env");
  });

  test("an empty file is fine", async () => {
    const cfg = loadConfig({ IOCMNG_CONFIG: await file("# nothing yet\n") });
    expect(cfg.plugins).toEqual([]);
  });

  test("a literal token is refused with a pointer to pat_env", async () => {
    const p = await file(
      "plugins:\n  - name: a\n    kind: task\n    git_url: https://h/r.git\n    pat: ghp_abcdef\n",
    );
    const msg = configError({ IOCMNG_CONFIG: p });
    expect(msg).toContain(`${p}: plugins[0].pat: a token must not be written in the config file`);
    expect(msg).toContain("pat_env: GIT_TOKEN");
    expect(msg).not.toContain("ghp_abcdef");
  });

  test("credentials inside the git URL are refused", async () => {
    const p = await file(
      "plugins:\n  - name: a\n    kind: task\n    git_url: https://user:ghp_x@h/r.git\n",
    );
    const msg = configError({ IOCMNG_CONFIG: p });
    expect(msg).toContain("plugins[0].git_url: credentials must not be written in the URL");
    expect(msg).not.toContain("ghp_x");
  });

  test("the API token is refused in the file", async () => {
    const p = await file("api_token: abc\n");
    expect(configError({ IOCMNG_CONFIG: p })).toContain(
      "api_token: secrets are not read from the config file; set the IOCMNG_API_TOKEN",
    );
  });

  const cases: [string, string, string][] = [
    ["unknown setting with hint", "prefx: A\n", "prefx: unknown setting (did you mean 'prefix'?)"],
    ["not a mapping", "- a\n", "expected a mapping of settings at the top level, got a list"],
    ["bad port in file", "port: eighty\n", "port must be an integer 1..65535, got 'eighty'"],
    ["port as a list", "port: [1]\n", "port: expected an integer 1..65535, got a list"],
    ["host not a string", "host: 3\n", "host: expected a string, got 3"],
    ["bad log level in file", "log_level: loud\n", "log_level must be one of fatal"],
    ["bad prefix in file", "prefix: 'A B'\n", "prefix must be a PV name fragment"],
    ["prefix not a string", "prefix: {a: 1}\n", "prefix: expected a string, got a mapping"],
    ["disable_devices junk", "disable_devices: perhaps\n", "disable_devices must be a boolean"],
    [
      "plugins not a list",
      "plugins: {a: 1}\n",
      "plugins: expected a list of plugins, got a mapping",
    ],
    [
      "plugin not a mapping",
      "plugins: [x]\n",
      "plugins[0]: expected a mapping describing a plugin, got 'x'",
    ],
    [
      "plugin bad name",
      "plugins:\n  - {name: 'a b', kind: task, git_url: 'file:///r'}\n",
      "plugins[0].name: expected a plugin name of 1..128 letters",
    ],
    [
      "plugin name too long",
      `plugins:\n  - {name: ${"a".repeat(129)}, kind: task, git_url: 'file:///r'}\n`,
      "plugins[0].name: expected a plugin name",
    ],
    [
      "plugin without kind",
      "plugins:\n  - {name: a, git_url: 'file:///r'}\n",
      "plugins[0].kind: expected 'task' or 'job', got nothing",
    ],
    [
      "plugin bad kind",
      "plugins:\n  - {name: a, kind: cron, git_url: 'file:///r'}\n",
      "plugins[0].kind: expected 'task' or 'job', got 'cron'",
    ],
    [
      "kind contradicting its list",
      "tasks:\n  - {name: a, kind: job, git_url: 'file:///r'}\n",
      "tasks[0].kind: expected 'task' (or no kind) in this list, got 'job'",
    ],
    [
      "plugin without git_url",
      "plugins:\n  - {name: a, kind: task}\n",
      "plugins[0].git_url: expected a git URL",
    ],
    [
      "plugin unknown key",
      "plugins:\n  - {name: a, kind: task, git_url: 'file:///r', brnch: main}\n",
      "plugins[0].brnch: unknown key (did you mean 'branch'?)",
    ],
    [
      "token as the https user name",
      "plugins:\n  - {name: a, kind: task, git_url: 'https://ghp_x@h/r.git'}\n",
      "plugins[0].git_url: credentials must not be written in the URL",
    ],
    [
      "remote-helper transport",
      "plugins:\n  - {name: a, kind: task, git_url: 'ext::sh'}\n",
      'plugins[0].git_url: git_url uses a git remote helper transport ("ext::")',
    ],
    [
      "fd transport",
      "plugins:\n  - {name: a, kind: task, git_url: 'fd::17'}\n",
      "plugins[0].git_url: git_url uses a git remote helper transport",
    ],
    [
      "URL starting with a dash",
      "plugins:\n  - {name: a, kind: task, git_url: '--upload-pack=touch'}\n",
      "plugins[0].git_url: git_url must not start with '-'",
    ],
    [
      "unsupported scheme",
      "plugins:\n  - {name: a, kind: task, git_url: 'ftp://h/r.git'}\n",
      'plugins[0].git_url: git_url scheme "ftp://" is not allowed',
    ],
    [
      "bad branch",
      "plugins:\n  - {name: a, kind: task, git_url: 'https://h/r.git', branch: '--force'}\n",
      'plugins[0].branch: branch "--force" is not a valid branch or tag name',
    ],
    [
      "path escaping the clone",
      "plugins:\n  - {name: a, kind: task, git_url: 'https://h/r.git', path: 'src/../../etc'}\n",
      "plugins[0].path: expected a relative path inside the repository",
    ],
    [
      "absolute path",
      "plugins:\n  - {name: a, kind: task, git_url: 'https://h/r.git', path: /etc}\n",
      "plugins[0].path: expected a relative path inside the repository",
    ],
    [
      "branch empty",
      "plugins:\n  - {name: a, kind: task, git_url: 'file:///r', branch: ''}\n",
      "plugins[0].branch: expected a non-empty string",
    ],
    [
      "parameters a list",
      "plugins:\n  - {name: a, kind: task, git_url: 'file:///r', parameters: [1]}\n",
      "plugins[0].parameters: expected a mapping, got a list",
    ],
    [
      "auto_start a string",
      "plugins:\n  - {name: a, kind: task, git_url: 'file:///r', auto_start: 'yes'}\n",
      "plugins[0].auto_start: expected true or false, got 'yes'",
    ],
    [
      "pat_env not a variable name",
      "plugins:\n  - {name: a, kind: task, git_url: 'file:///r', pat_env: 'ghp_$(x)'}\n",
      "plugins[0].pat_env: expected the name of an environment variable",
    ],
    [
      "duplicate plugin names across lists",
      "tasks:\n  - {name: a, git_url: 'file:///r'}\njobs:\n  - {name: a, git_url: 'file:///s'}\n",
      "jobs[0].name: plugin name 'a' already declared at tasks[0]",
    ],
    ["YAML syntax error", "prefix: A\nplugins:\n  - name: [\n", "YAML syntax error at line"],
    ["duplicate keys", "prefix: A\nprefix: B\n", "Map keys must be unique"],
  ];
  test.each(cases)("%s", async (_name, text, expected) => {
    const p = await file(text);
    const msg = configError({ IOCMNG_CONFIG: p });
    expect(msg.startsWith(`${p}: `)).toBe(true);
    expect(msg).toContain(expected);
  });

  test("a missing, oversized or hostile file is refused with the variable's name", async () => {
    expect(configError({ IOCMNG_CONFIG: join(dir, "nope.yaml") })).toContain(
      `IOCMNG_CONFIG: cannot read '${join(dir, "nope.yaml")}': ENOENT`,
    );
    const sub = join(dir, "a-dir");
    await mkdir(sub, { recursive: true });
    expect(configError({ IOCMNG_CONFIG: sub })).toContain("is not a regular file");
    const big = await file(Buffer.alloc(MAX_SERVER_CONFIG_BYTES + 1, 0x20));
    expect(configError({ IOCMNG_CONFIG: big })).toContain("is too large");
    // "Billion laughs": 9 levels of 10 aliases each, nested under a known key.
    const levels = [
      "plugins:",
      "  - name: a",
      "    kind: task",
      "    git_url: file:///r",
      "    parameters:",
    ];
    levels.push(`      l0: &l0 [${Array(10).fill("lol").join(", ")}]`);
    for (let i = 1; i < 9; i++) {
      levels.push(
        `      l${i}: &l${i} [${Array(10)
          .fill(`*l${i - 1}`)
          .join(", ")}]`,
      );
    }
    const bomb = await file(levels.join("\n"));
    expect(configError({ IOCMNG_CONFIG: bomb })).toContain("alias");
    const deep = await file(`plugins: ${"[".repeat(20000)}${"]".repeat(20000)}\n`);
    expect(configError({ IOCMNG_CONFIG: deep })).toContain("nesting too deep");
  });
});

describe("values file (IOCMNG_BEAMLINE_CONFIG)", () => {
  const VALUES = `
beamline: sparc
namespace: sparc-ns
epicsConfiguration:
  iocs:
    - name: mag1
      devtype: mag
      iocprefix: "SPARC:MAG"
      devices:
        - name: QUAD01
`;
  test("beamline and namespace make the PV prefix; the whole document is kept", async () => {
    const p = await file(VALUES);
    const cfg = loadConfig({ IOCMNG_BEAMLINE_CONFIG: p });
    expect(cfg.beamline).toBe("sparc");
    expect(cfg.namespace).toBe("sparc-ns");
    expect(cfg.beamlineConfigFile).toBe(p);
    const iocs = (cfg.beamlineValues!.epicsConfiguration as { iocs: { name: string }[] }).iocs;
    expect(iocs[0]!.name).toBe("mag1");
    expect(pvPrefixFor(cfg, "temp-monitor")).toBe("SPARC:SPARC-NS:TEMP-MONITOR");
  });

  test("beamline_config in the config file is relative to that file; the env var wins", async () => {
    const sub = join(dir, "cm");
    await mkdir(sub, { recursive: true });
    await writeFile(join(sub, "values.yaml"), "beamline: bl1\n");
    const cfgFile = join(sub, "iocmng.yaml");
    await writeFile(cfgFile, "beamline_config: values.yaml\n");
    expect(loadConfig({ IOCMNG_CONFIG: cfgFile }).beamline).toBe("bl1");
    const other = await file("beamline: bl2\n");
    await writeFile(cfgFile, "beamline_config: nowhere.yaml\n");
    expect(configError({ IOCMNG_CONFIG: cfgFile })).toContain(
      `${cfgFile}: beamline_config: cannot read '${join(sub, "nowhere.yaml")}': ENOENT`,
    );
    expect(loadConfig({ IOCMNG_CONFIG: cfgFile, IOCMNG_BEAMLINE_CONFIG: other }).beamline).toBe(
      "bl2",
    );
  });

  test("bad beamline/namespace values and unreadable files are refused", async () => {
    expect(configError({ IOCMNG_BEAMLINE_CONFIG: await file("beamline: 'a b'\n") })).toContain(
      "beamline: expected a PV name fragment",
    );
    expect(configError({ IOCMNG_BEAMLINE_CONFIG: await file("namespace: 'a:b'\n") })).toContain(
      "namespace: expected a PV name fragment",
    );
    expect(configError({ IOCMNG_BEAMLINE_CONFIG: await file("beamline: [x]\n") })).toContain(
      "beamline: expected a string, got a list",
    );
    expect(configError({ IOCMNG_BEAMLINE_CONFIG: await file("- 1\n") })).toContain(
      "expected a mapping at the top level",
    );
    expect(configError({ IOCMNG_BEAMLINE_CONFIG: join(dir, "missing.yaml") })).toContain(
      "IOCMNG_BEAMLINE_CONFIG: cannot read",
    );
  });
});

describe("pvPrefixFor", () => {
  const base = loadConfig({});
  const with_ = (patch: Partial<ServerConfig>): ServerConfig => ({ ...base, ...patch });
  test("prefix wins, then beamline:namespace, then the IOCMNG fallback; names are upper-cased", () => {
    expect(pvPrefixFor(with_({ prefix: "Lab:Mgr", beamline: "bl" }), "my-task")).toBe(
      "Lab:Mgr:MY-TASK",
    );
    expect(pvPrefixFor(with_({ prefix: "" }), "t1")).toBe("T1");
    expect(pvPrefixFor(with_({ beamline: "sparc", namespace: "ns" }), "t1")).toBe("SPARC:NS:T1");
    expect(pvPrefixFor(with_({ beamline: "sparc" }), "t1")).toBe("SPARC:T1");
    expect(pvPrefixFor(base, "t1")).toBe("IOCMNG:T1");
  });
});
