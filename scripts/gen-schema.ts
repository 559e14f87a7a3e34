/**
 * Writes schema/plugin-config.schema.json from the TypeBox schema in src/plugins/config-schema.ts, for
 * editors (e.g. `# yaml-language-server: $schema=…` at the top of a plugin's config.yaml).
 * `bun scripts/gen-schema.ts --check` exits 1 when the committed file is out of date.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pluginConfigJsonSchema } from "../src/plugins/config-schema.ts";

/** Path of the generated file. */
export const SCHEMA_FILE = join(import.meta.dir, "..", "schema", "plugin-config.schema.json");

/** The exact text the schema file must contain. */
export function schemaText(): string {
  return `${JSON.stringify(pluginConfigJsonSchema(), null, 2)}\n`;
}

if (import.meta.main) {
  const text = schemaText();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(SCHEMA_FILE, "utf8");
    } catch {}
    if (current !== text) {
      console.error(`${SCHEMA_FILE} is out of date: run bun scripts/gen-schema.ts`);
      process.exit(1);
    }
    console.log(`${SCHEMA_FILE} is up to date`);
  } else {
    writeFileSync(SCHEMA_FILE, text);
    console.log(`wrote ${SCHEMA_FILE}`);
  }
}
