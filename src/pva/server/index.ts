export * from "./config.ts";
export type { PvaCounters } from "./connection.ts";
export * from "./rpc.ts";
export * from "./server.ts";
export { type PvaWarmupReport, pvaWarmupEnabled } from "./warmup.ts";
