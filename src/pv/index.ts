export * from "./pv.ts";
export * from "./registry.ts";
export * from "./source.ts";
export * from "./types.ts";
