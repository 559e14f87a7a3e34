/** Sans-I/O Channel Access codec: constants, headers, reassembly, message encoders, DBR data. */
export * from "./constants.ts";
export * from "./dbr-decode.ts";
export * from "./dbr-encode.ts";
export * from "./dbr-layout.ts";
export * from "./dbr-text.ts";
export * from "./header.ts";
export * from "./messages.ts";
export * from "./requests.ts";
export * from "./stream.ts";
export * from "./udp.ts";
