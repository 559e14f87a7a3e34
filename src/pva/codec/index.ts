export * from "./bitset.ts";
export * from "./header.ts";
export * from "./messages.ts";
export * from "./pvrequest.ts";
export * from "./types.ts";
export * from "./values.ts";
export * from "./wire.ts";
