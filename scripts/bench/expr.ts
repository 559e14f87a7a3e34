/**
 * Evaluations per second of the expression language (rule conditions and transforms), compiled
 * once and evaluated many times against a Map scope, as the declarative engine does each cycle.
 * Run: bun scripts/bench/expr.ts   (about 3 s; one line per expression, then the cost of
 * 1,000 rules/s as a share of one core)
 */
import { compileExpr, type Value } from "../../src/expr/index.ts";

const scope = new Map<string, Value>([
  ["chiller", 0],
  ["rf", 1],
  ["limit", 0.5],
  ["sig_buf", [1, 1, 3, 3]],
  ["pressure_buf", [1e-8, 2e-8, 3e-8]],
  ["vac_ok", true],
  ["AVG", 2],
]);

const cases: [string, string][] = [
  ["rule: comparison + and", "chiller == 0 and rf == 1"],
  ["rule: stats on a 4-element buffer", "std(sig_buf) > limit and length(sig_buf) >= 3"],
  ["rule: not/or + mean", "not vac_ok or mean(pressure_buf) > 1e-6"],
  ["transform: mean(buffer)", "mean(sig_buf)"],
  ["transform: round(AVG * 10, 1)", "round(AVG * 10, 1)"],
  ["transform: ternary + string format", "'%.2f' % AVG if AVG > 1 else 'low'"],
];

function bench(name: string, src: string, ms: number): number {
  const c = compileExpr(src);
  for (let i = 0; i < 20_000; i++) c.evaluate(scope); // JIT warm-up
  let n = 0;
  const t0 = Bun.nanoseconds();
  const until = t0 + ms * 1e6;
  while (Bun.nanoseconds() < until) {
    for (let i = 0; i < 1000; i++) c.evaluate(scope);
    n += 1000;
  }
  const ns = (Bun.nanoseconds() - t0) / n;
  console.log(
    `${name.padEnd(40)} ${ns.toFixed(0).padStart(6)} ns/eval ${(1e9 / ns / 1e6).toFixed(2).padStart(6)} M eval/s`,
  );
  return ns;
}

const compileT0 = Bun.nanoseconds();
for (let i = 0; i < 10_000; i++) compileExpr(cases[1]?.[1] ?? "");
console.log(
  `compile (stats rule)`.padEnd(40),
  `${((Bun.nanoseconds() - compileT0) / 10_000 / 1000).toFixed(1)} µs/compile`,
);

let worst = 0;
for (const [name, src] of cases) worst = Math.max(worst, bench(name, src, 400));
console.log(
  `1,000 rules/s at the slowest case: ${(((worst * 1000) / 1e9) * 100).toFixed(4)} % of one core`,
);
