/** Invalid configuration: the error type of src/config.ts and its parsers. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
