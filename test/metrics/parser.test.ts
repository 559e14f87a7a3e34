/** The test helper's strict Prometheus text parser refuses what a Prometheus server would. */
import { expect, test } from "bun:test";
import { parseMetrics, sample } from "../helpers/prom.ts";

const GOOD = `# HELP x_total Things.
# TYPE x_total counter
x_total{a="q\\"uote",b="n\\\\l"} 3
# TYPE h_seconds histogram
h_seconds_bucket{le="0.1",p="a"} 1
h_seconds_bucket{le="+Inf",p="a"} 2
h_seconds_sum{p="a"} 0.3
h_seconds_count{p="a"} 2
# TYPE g gauge
g NaN
`;

test("accepts valid text and reads samples", () => {
  const m = parseMetrics(GOOD);
  expect(sample(m, "x_total", { a: 'q"uote', b: "n\\l" })).toBe(3);
  expect(sample(m, "h_seconds", { p: "a" })).toBe(2);
  expect(Number.isNaN(sample(m, "g"))).toBe(true);
});

test.each([
  ["lower-case NaN", GOOD.replace("g NaN", "g Nan")],
  ["unquoted label", GOOD.replace('a="q\\"uote"', "a=q")],
  ["sample without TYPE", `${GOOD}y 1\n`],
  ["bad name", `${GOOD}# TYPE 1x gauge\n`],
  ["negative counter", GOOD.replace("} 3", "} -3")],
  ["+Inf bucket missing", GOOD.replace('h_seconds_bucket{le="+Inf",p="a"} 2\n', "")],
  ["count differs from +Inf", GOOD.replace('h_seconds_count{p="a"} 2', 'h_seconds_count{p="a"} 5')],
  ["trailing garbage", GOOD.replace("} 3", "} 3 x y")],
])("refuses %s", (_why, text) => {
  expect(() => parseMetrics(text)).toThrow();
});
