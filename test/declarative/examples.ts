/**
 * The three config-only example plugins of iocmng 2.7.9 (test/fixtures/compat-2.7.9, kept
 * byte-for-byte), as the YAML text the declarative tests parse: one copy of each for the engine,
 * task and acceptance tests.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

const FIXTURES = join(import.meta.dir, "../fixtures/compat-2.7.9");

/** `stats` (ring buffers, chained transforms), `intlk` (latch, actuators), `vac` (reactive). */
export function example(name: "stats" | "intlk" | "vac"): string {
  return readFileSync(join(FIXTURES, name, "config.yaml"), "utf8");
}
