/**
 * The built-in `server` PV every pvxs server has (docs/pva.md §The `server` PV): an RPC-only
 * channel that search does not answer (a client opens it on a known server, `pvxlist host:port`)
 * and that lists the served channel names (`op=channels`) or says what the server is
 * (`op=info`). Arguments come as an NTURI query or a plain structure, like any RPC here.
 */
import { scalar, scalarArray, struct, TypeCode, type TypeDesc } from "../codec/types.ts";
import { alarmT, timeT } from "./nt.ts";
import type { RpcHandler, RpcResult } from "./rpc.ts";

/** The name pvxs clients ask for. */
export const SERVER_PV = "server";

/** What pvxs answers `op=channels` with: NTScalarArray of strings, value + alarm + timeStamp. */
const CHANNELS_T = struct("epics:nt/NTScalarArray:1.0", [
  ["value", scalarArray(TypeCode.STRING)],
  ["alarm", alarmT],
  ["timeStamp", timeT],
]);
const HELP_T = struct("epics:nt/NTScalar:1.0", [
  ["value", scalar(TypeCode.STRING)],
  ["alarm", alarmT],
  ["timeStamp", timeT],
]);
const INFO_T = struct("", [
  ["implLang", scalar(TypeCode.STRING)],
  ["version", scalar(TypeCode.STRING)],
]);

const HELP =
  "RPC on 'server': op=channels lists the channel names served here, op=info names the server";

function nt(type: TypeDesc, value: unknown): RpcResult {
  const now = Date.now();
  return {
    type,
    value: {
      value,
      alarm: { severity: 0, status: 0, message: "" },
      timeStamp: {
        secondsPastEpoch: Math.floor(now / 1000),
        nanoseconds: (now % 1000) * 1e6,
        userTag: 0,
      },
    },
  };
}

/**
 * The handler of the `server` PV. `names` gives every channel served now (PVs and RPC names);
 * the reply lists them sorted, each once, without `server` itself (as pvxs). `version` is what
 * op=info reports (the product's name and version, given by whoever builds the server).
 */
export function serverPvHandler(names: () => Iterable<string>, version: string): RpcHandler {
  return (req) => {
    if ("help" in req.args) return nt(HELP_T, HELP);
    switch (req.args.op) {
      case "channels": {
        const set = new Set(names());
        set.delete(SERVER_PV);
        return nt(CHANNELS_T, [...set].sort());
      }
      case "info":
        return {
          type: INFO_T,
          value: { implLang: "js", version },
        };
      default:
        // pvxs's answer to anything else.
        throw new Error("Not implemented");
    }
  };
}
