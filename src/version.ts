import pkg from "../package.json" with { type: "json" };

/** The product version, taken from package.json so the binary and the sources agree. */
export const VERSION: string = pkg.version;
