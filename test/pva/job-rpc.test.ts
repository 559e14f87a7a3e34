/**
 * A job's run as a PVA RPC on `PREFIX:RUN`: a real job plugin from a git repo the test creates,
 * loaded by the controller of a runtime built by buildRuntime (PVA on), called with our PVA
 * client the way `pvxcall PREFIX:RUN gain=3` calls it (an NTURI whose query holds strings).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { loadConfig } from "../../src/config.ts";
import { Cmd } from "../../src/pva/codec/header.ts";
import { scalar, struct, TypeCode, type TypeDesc } from "../../src/pva/codec/types.ts";
import { buildRuntime, type Runtime } from "../../src/server.ts";
import { createRepo, type TestRepo } from "../helpers/git-repo.ts";
import { PvaClient, udpSearch } from "../helpers/pva-client.ts";
import { TEST_TIMINGS } from "../plugins/harness.ts";

const LOOPBACK_ENV = {
  EPICS_PVAS_INTF_ADDR_LIST: "127.0.0.1",
  EPICS_PVAS_SERVER_PORT: "0",
  EPICS_PVAS_BROADCAST_PORT: "0",
  EPICS_PVAS_AUTO_BEACON_ADDR_LIST: "NO",
};

/** Echoes the parameters it ran with, and their types; counts runs in RUNS. */
const JOB_TS = `import { JobBase, JobResult } from "iocmng";
export class Echo extends JobBase {
  private runs = 0;
  initialize(): void {}
  async execute(): Promise<JobResult> {
    this.runs++;
    this.setPv("RUNS", this.runs);
    const p = this.parameters;
    if (p.fail === "yes") return JobResult.fail("asked to fail", { runs: this.runs });
    return JobResult.ok(
      { gain: p.gain, gainType: typeof p.gain, label: p.label, verbose: p.verbose, runs: this.runs },
      "echoed",
    );
  }
}
`;
const CONFIG_YAML = `parameters:
  gain: 2
  label: base
  verbose: false
pvs:
  outputs:
    RUNS:
      type: int
      value: 0
`;

function nturi(name: string, query: Record<string, string>): [TypeDesc, unknown] {
  const type = struct("epics:nt/NTURI:1.0", [
    ["scheme", scalar(TypeCode.STRING)],
    ["authority", scalar(TypeCode.STRING)],
    ["path", scalar(TypeCode.STRING)],
    [
      "query",
      struct(
        "",
        Object.keys(query).map((k) => [k, scalar(TypeCode.STRING)]),
      ),
    ],
  ]);
  return [type, { scheme: "pva", authority: "", path: name, query }];
}

let runtime: Runtime;
let repo: TestRepo;
let dir = "";
let client: PvaClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pva-jobrpc-"));
  repo = await createRepo({ files: { "job.ts": JOB_TS, "config.yaml": CONFIG_YAML } });
  const config = loadConfig({
    IOCMNG_STATE_DIR: join(dir, "state"),
    IOCMNG_PLUGINS_DIR: join(dir, "plugins"),
    IOCMNG_PREFIX: "RPCT",
  });
  runtime = await buildRuntime(config, pino({ level: "silent" }), {
    env: LOOPBACK_ENV,
    caConfig: false,
    pvaConfig: {},
    timings: TEST_TIMINGS,
  });
  const r = await runtime.controller.add({ kind: "job", name: "echo", git_url: repo.url });
  if (!r.ok) throw new Error(`job not loaded: ${r.message}`);
  client = await PvaClient.connect(runtime.pva?.tcpPort ?? 0);
}, 60_000);

afterAll(async () => {
  client?.close();
  await runtime?.stop();
  await repo?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const RUN = "RPCT:ECHO:RUN";

describe("job run as PVA RPC", () => {
  test("PREFIX:RUN is searchable once the job has started", async () => {
    const pva = runtime.pva;
    if (!pva) throw new Error("PVA expected");
    expect((await udpSearch(pva.udpPort, [RUN])).length).toBe(1);
  });

  test("arguments become the run's parameters, typed as the job's config declares", async () => {
    const res = await client.rpc(RUN, ...nturi(RUN, { gain: "3.5", label: "hi", verbose: "true" }));
    expect(res.status.type).toBe(0);
    expect(res.type?.id).toBe("iocmng:job/Result:1.0");
    const v = res.value as Record<string, unknown>;
    expect(v.success).toBe(true);
    expect(v.message).toBe("echoed");
    expect(typeof v.timestamp).toBe("string");
    expect(v.data).toMatchObject({ gain: 3.5, gainType: "number", label: "hi", verbose: true });
    // The job's PVs moved as for a REST run.
    const status = (await client.get("RPCT:ECHO:STATUS")).value.value as {
      index: number;
      choices: string[];
    };
    expect(status.choices[status.index]).toBe("SUCCESS");
  });

  test("the overlay lasts one run: a call without arguments sees the job's own", async () => {
    const res = await client.rpc(RUN, ...nturi(RUN, {}));
    expect(res.status.type).toBe(0);
    expect((res.value as { data: unknown }).data).toMatchObject({ gain: 2, label: "base" });
  });

  test("a failed run is a result with success false, not a transport error", async () => {
    const res = await client.rpc(RUN, ...nturi(RUN, { fail: "yes" }));
    expect(res.status.type).toBe(0);
    expect(res.value).toMatchObject({ success: false, message: "asked to fail" });
    // RPC runs are kept in the job's history like REST runs.
    expect(runtime.controller.jobResults("echo")?.at(-1)).toMatchObject({
      success: false,
      message: "asked to fail",
    });
  });

  test("bad arguments are refused with the reason and the job does not run", async () => {
    const before = (await client.get("RPCT:ECHO:RUNS")).value.value;
    const bad = await client.rpc(RUN, ...nturi(RUN, { gain: "lots" }));
    expect(bad.status.type).toBe(2);
    expect(bad.status.message).toContain("argument gain: expected a number");
    const proto = await client.rpc(RUN, ...nturi(RUN, { constructor: "x" }));
    expect(proto.status.message).toContain("not allowed");
    const many: Record<string, string> = {};
    for (let i = 0; i < 65; i++) many[`a${i}`] = "1";
    const tooMany = await client.rpc(RUN, ...nturi(RUN, many));
    expect(tooMany.status.message).toContain("too many arguments");
    expect((await client.get("RPCT:ECHO:RUNS")).value.value).toBe(before);
    // Still served after the refusals.
    expect((await client.rpc(RUN, ...nturi(RUN, {}))).status.type).toBe(0);
  });

  test("removing the job destroys the RPC channel and it is no longer found", async () => {
    const pva = runtime.pva;
    if (!pva) throw new Error("PVA expected");
    await client.channel(RUN);
    const r = await runtime.controller.remove("job", "echo");
    expect(r.ok).toBe(true);
    await client.next((m) => m.command === Cmd.DESTROY_CHANNEL);
    expect(pva.rpc.has(RUN)).toBe(false);
    expect((await udpSearch(pva.udpPort, [RUN])).length).toBe(0);
  });
});
