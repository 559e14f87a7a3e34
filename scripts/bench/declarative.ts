/**
 * Declarative engine figures:
 *  1. rules and transforms evaluated per second in whole cycles (Engine.evaluate with 100 rules
 *     and 100 transforms over 20 buffered links), per core;
 *  2. link monitor → rule → output PV latency: a reactive DeclarativeTask monitors a PV served by
 *     our CA server in this process (through libca, as in a plugin Worker); the time from posting
 *     the source value to the rule's output PV update, p50/p99.
 * Run: bun scripts/bench/declarative.ts   (about 20 s)
 */

import pino from "pino";
import { parse as parseYaml } from "yaml";
import { caClient, closeCaClient } from "../../ffi/index.ts";
import { CaServer } from "../../src/ca/server/index.ts";
import { Engine, type EngineIo } from "../../src/declarative/engine.ts";
import { declarativeExtraPvDefs, portPvDefs } from "../../src/declarative/pvdefs.ts";
import { parseDeclarative } from "../../src/declarative/spec.ts";
import { defaultPvDefs } from "../../src/plugins/config.ts";
import type { Pv } from "../../src/pv/pv.ts";
import { PvRegistry } from "../../src/pv/registry.ts";
import {
  constructWithContext,
  type PvAlarm,
  type PvInput,
  setServices,
} from "../../src/sdk/host.ts";
import { DeclarativeTask } from "../../src/sdk/index.ts";

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

function throughput(): void {
  const inputs = Array.from(
    { length: 20 },
    (_, i) => `  s${i}: {type: float, link: "X:${i}", buffer_size: 10}`,
  );
  const outputs = Array.from(
    { length: 100 },
    (_, i) => `  o${i}: {type: float}\n  r${i}: {type: bool, latch: true}`,
  );
  const transforms = Array.from(
    { length: 100 },
    (_, i) => `  - {output: o${i}, expression: "mean(s${i % 20}_buf) * 2 + s${(i + 1) % 20}"}`,
  );
  const rules = Array.from(
    { length: 100 },
    (_, i) =>
      `  - {id: R${i}, condition: "o${i} > 10 and std(s${i % 20}_buf) < 5", outputs: {r${i}: 1}}`,
  );
  const yaml = `arguments:\n inputs:\n${inputs.join("\n")}\n outputs:\n${outputs.join("\n")}\ntransforms:\n${transforms.join("\n")}\nrules:\n${rules.join("\n")}\n`;
  const cfg = parseYaml(
    yaml.replace(/^ {2}/gm, "    ").replace(/^ (inputs|outputs):/gm, "  $1:"),
  ) as Record<string, unknown>;
  const spec = parseDeclarative(cfg, {}, "bench");
  const io: EngineIo = { setLocal() {}, getLocal: () => 0, putLink() {}, log() {} };
  const engine = new Engine(spec, io, {});
  for (let i = 0; i < 20; i++)
    for (let k = 0; k < 10; k++) engine.linkValue(`s${i}`, Math.random() * 10);
  for (let i = 0; i < 200; i++) engine.evaluate();
  const t0 = Bun.nanoseconds();
  let n = 0;
  while (Bun.nanoseconds() - t0 < 3e9) {
    engine.linkValue(`s${n % 20}`, Math.random() * 10);
    engine.evaluate();
    n++;
  }
  const s = (Bun.nanoseconds() - t0) / 1e9;
  const perCycle = (s / n) * 1e6;
  console.log(
    `cycle of 100 transforms + 100 rules (20 links, buffers of 10): ${perCycle.toFixed(0)} µs`,
  );
  console.log(
    `  = ${((n * 200) / s / 1e6).toFixed(2)} M rule/transform evaluations per second on one core`,
  );
  console.log(
    `  1,000 rules/s costs ${((((perCycle / 200) * 1000) / 1e6) * 100).toFixed(3)} % of a core`,
  );
}

async function latency(samples: number): Promise<void> {
  const registry = new PvRegistry();
  const server = new CaServer({
    registry,
    logger: pino({ level: "silent" }),
    config: { serverPort: 0, intfAddrs: ["127.0.0.1"], autoBeaconAddrList: false, beaconAddrs: [] },
  });
  await server.start();
  Object.assign(process.env, {
    EPICS_CA_ADDR_LIST: "127.0.0.1",
    EPICS_CA_AUTO_ADDR_LIST: "NO",
    EPICS_CA_SERVER_PORT: String(server.tcpPort),
  });
  setServices({ ca: () => caClient() });
  const src = registry.add({ name: "BENCH:SRC", kind: "double", writable: true, initial: 0 });
  const cfg = parseYaml(`
parameters: {mode: reactive, interval: 10}
arguments:
  inputs: {x: {type: float, link: "BENCH:SRC", link_mode: monitor, trigger: true}}
  outputs: {Y: {type: float}}
rules:
  - {id: COPY, condition: "x > 0", outputs: {Y: 1}}
transforms:
  - {output: Y, expression: "x"}
`) as Record<string, unknown>;
  const spec = parseDeclarative(cfg, cfg.parameters as Record<string, unknown>, "bench");
  const pvs = new Map<string, Pv>();
  for (const d of [
    ...defaultPvDefs("task"),
    ...declarativeExtraPvDefs(spec),
    ...portPvDefs(spec),
  ]) {
    pvs.set(d.name, registry.add({ ...d.spec, name: `BENCH:T:${d.name}` }));
  }
  const task = constructWithContext(DeclarativeTask, {
    name: "bench",
    kind: "task",
    prefix: "BENCH:T",
    parameters: {},
    mode: "continuous",
    interval: 10,
    declarative: spec,
    host: {
      setPv: (n: string, v: PvInput, a?: PvAlarm) =>
        pvs.get(n)?.post(v, a ? { severity: a.severity as 0 } : {}),
      getPv: (n: string) => pvs.get(n)?.value,
      hasPv: (n: string) => pvs.has(n),
      addPv: async () => {},
      log: () => {},
    },
  });
  await task.initialize();
  const out = pvs.get("Y") as Pv;
  const lat: number[] = [];
  for (let i = 1; i <= samples; i++) {
    const t0 = performance.now();
    const seen = new Promise<void>((resolve) => {
      const off = out.subscribe(() => {
        if (out.value === i) {
          off();
          resolve();
        }
      });
    });
    src.post(i);
    await seen;
    lat.push(performance.now() - t0);
    await Bun.sleep(5);
  }
  console.log(
    `link monitor -> transform/rule -> output PV (${samples} samples): p50 ${pct(lat, 50).toFixed(3)} ms, p99 ${pct(lat, 99).toFixed(3)} ms, max ${Math.max(...lat).toFixed(3)} ms`,
  );
  await task.cleanup();
  await closeCaClient();
  await server.stop();
}

throughput();
await latency(500);
