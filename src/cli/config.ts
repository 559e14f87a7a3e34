import { ConfigError, loadConfig, type ServerConfig } from "../config.ts";
import { CliError } from "./errors.ts";

/** The server configuration from `env`; an invalid one is one CLI line (exit 1, no stack). */
export function loadCliConfig(env: Record<string, string | undefined>): ServerConfig {
  try {
    return loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(`configuration: ${e.message}`);
    throw e;
  }
}
