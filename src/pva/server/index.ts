export * from "./config.ts";
export type { PvaCounters } from "./connection.ts";
export * from "./rpc.ts";
export * from "./server.ts";
