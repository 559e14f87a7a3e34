/** Sans-I/O Channel Access codec: constants, headers, reassembly, message encoders, DBR data. */
export * from "./constants.ts";
export * from "./dbr.ts";
export * from "./header.ts";
export * from "./messages.ts";
export * from "./stream.ts";
export * from "./udp.ts";
