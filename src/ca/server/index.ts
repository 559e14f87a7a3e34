/** Native Channel Access server: configuration from the environment and the server itself. */
export type { CaServerConfig } from "./config.ts";
export {
  CaConfigError,
  caServerConfigFromEnv,
  DEFAULT_CA_CONFIG,
  resolveCaConfig,
} from "./config.ts";
export { CaServer, type CaServerStats } from "./server.ts";
