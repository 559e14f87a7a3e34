/**
 * Operations on channels (docs/pva.md §Operations): GET, PUT, PUT_GET, MONITOR, RPC, GET_FIELD,
 * DESTROY_REQUEST and CANCEL_REQUEST. Each INIT checks the channel and the per-connection bounds,
 * parses the pvRequest and answers with the type; later requests find the operation by ioid.
 * A PUT is answered only once the PV's write (and the plugin's handler) has finished.
 */
import { RIGHTS } from "../../pv/access.ts";
import { BitSet } from "../codec/bitset.ts";
import { Cmd, Sub } from "../codec/header.ts";
import { beginMessage, beginOpReply, endMessage } from "../codec/messages.ts";
import { parsePvRequest, selectionMask } from "../codec/pvrequest.ts";
import { decodeType, encodeType, lookup, type TypeDesc } from "../codec/types.ts";
import { decodeBitsAndPartial, decodeValue, encodePartial, encodeValue } from "../codec/values.ts";
import { errorStatus, OK, type Reader, type Status } from "../codec/wire.ts";
import type { Channel, Connection } from "./connection.ts";
import { MonitorOp } from "./monitor.ts";
import { fullSelection, type NtShape, ntShape, ntValue, putValue } from "./nt.ts";
import { resultTypeValue, rpcArgs } from "./rpc.ts";

/** GET, PUT, PUT_GET or RPC state; MONITOR has its own class. */
export interface SimpleOp {
  cmd: number;
  ioid: number;
  channel: Channel;
  shape: NtShape | null;
  /** Leaves the client selected. */
  select: BitSet;
  /** The selection is every leaf (the usual request): replies use the shared full sets. */
  selectsAll: boolean;
  busy: boolean;
}

export type Op = SimpleOp | MonitorOp;

const OPS = new Set<number>([Cmd.GET, Cmd.PUT, Cmd.PUT_GET, Cmd.MONITOR, Cmd.RPC]);

/** Dispatches one operation message (after validation). Unknown commands are ignored. */
export function handleOp(c: Connection, cmd: number, r: Reader): void {
  if (cmd === Cmd.GET_FIELD) {
    getField(c, r);
    return;
  }
  if (cmd === Cmd.DESTROY_REQUEST || cmd === Cmd.CANCEL_REQUEST) {
    r.u32();
    const ioid = r.u32();
    const op = c.ops.get(ioid);
    // CANCEL has nothing to interrupt here: writes run to completion, so it only ends monitors' flow.
    if (op && cmd === Cmd.DESTROY_REQUEST) destroyOp(c, op);
    return;
  }
  if (!OPS.has(cmd)) return;
  const sid = r.u32();
  const ioid = r.u32();
  const sub = r.u8();
  if (sub & Sub.INIT) {
    init(c, cmd, sid, ioid, sub, r);
    return;
  }
  const op = c.ops.get(ioid);
  if (!op || op.cmd !== cmd || op.channel.sid !== sid) {
    c.refuseOnce("ioid", `request for unknown operation ${ioid}`);
    return;
  }
  if (op instanceof MonitorOp) monitorRequest(c, op, sub, r);
  else if (cmd === Cmd.GET) getExec(c, op, sub);
  else if (cmd === Cmd.PUT) putExec(c, op, sub, r);
  else if (cmd === Cmd.PUT_GET) putGetExec(c, op, sub, r);
  else rpcExec(c, op, sub, r);
}

function reply(c: Connection, cmd: number, ioid: number, sub: number, s: Status): void {
  endMessage(c.out, beginOpReply(c.out, cmd, ioid, sub, s));
}

function init(c: Connection, cmd: number, sid: number, ioid: number, sub: number, r: Reader): void {
  const ch = c.channels.get(sid);
  const fail = (msg: string) => reply(c, cmd, ioid, sub, errorStatus(msg));
  if (!ch) {
    fail("No such channel");
    return;
  }
  if (c.ops.has(ioid)) {
    fail("ioid already in use");
    return;
  }
  if (c.ops.size >= c.srv.config.maxOpsPerConnection) {
    c.refuseOnce("ops", `operation limit ${c.srv.config.maxOpsPerConnection}`);
    fail("Too many operations");
    return;
  }
  const reqType = decodeType(r, c.typeCache);
  const req = parsePvRequest(reqType, reqType ? decodeValue(r, reqType, c.typeCache) : null);
  if (cmd === Cmd.RPC) {
    const select = new BitSet();
    addOp(c, ch, { cmd, ioid, channel: ch, shape: null, select, selectsAll: false, busy: false });
    reply(c, cmd, ioid, sub, OK);
    return;
  }
  if (!ch.pv) {
    fail("Only RPC is supported on this channel");
    return;
  }
  // Access security: a reader without read access gets no value (checked when the operation
  // starts; a PUT's write access is checked at each execution).
  if (cmd !== Cmd.PUT && !(c.rights(ch.pv) & RIGHTS.READ)) {
    fail("Read access denied");
    return;
  }
  const shape = ntShape(ch.pv);
  const mask = selectionMask(shape.type, req.fields);
  if (!mask) {
    fail("Empty field selection");
    return;
  }
  const select = mask.and(shape.all);
  let op: Op;
  if (cmd === Cmd.MONITOR) {
    const max = c.srv.config.maxMonitorQueue;
    const q = Number.parseInt(req.options.queueSize ?? "4", 10);
    const queueSize = Math.min(max, Math.max(2, Number.isFinite(q) ? q : 4));
    const pipeline = req.options.pipeline === "true";
    let window = sub & Sub.ACK && r.remaining >= 4 ? r.u32() : queueSize;
    if (window <= 0) window = queueSize;
    op = new MonitorOp(c, ioid, ch, ch.pv, shape, select, queueSize, pipeline, window);
  } else {
    const selectsAll = select.key() === shape.all.key();
    op = { cmd, ioid, channel: ch, shape, select, selectsAll, busy: false };
  }
  addOp(c, ch, op);
  // A pipelined MONITOR INIT (0x88) is answered as a plain INIT (0x08), as pvxs does.
  const p = beginOpReply(c.out, cmd, ioid, cmd === Cmd.MONITOR ? sub & ~Sub.ACK : sub, OK);
  c.writeType(shape.type);
  if (cmd === Cmd.PUT_GET) c.writeType(shape.type);
  endMessage(c.out, p);
}

function addOp(c: Connection, ch: Channel, op: Op): void {
  c.ops.set(op.ioid, op);
  ch.ops.set(op.ioid, op);
}

function destroyOp(c: Connection, op: Op): void {
  c.ops.delete(op.ioid);
  op.channel.ops.delete(op.ioid);
  opClosed(c, op);
}

/** The operation ended (destroyed, channel gone, connection closed). */
export function opClosed(_c: Connection, op: Op): void {
  if (op instanceof MonitorOp) op.close();
}

/** Writes ioid, sub, OK, the selected bits that have a value, and their values. */
function dataReply(c: Connection, op: SimpleOp, cmd: number, sub: number): void {
  const pv = op.channel.pv;
  if (!pv || !op.shape) return;
  const p = beginOpReply(c.out, cmd, op.ioid, sub, OK);
  const bits = fullSelection(op.shape, pv, op.select, op.selectsAll);
  bits.encode(c.out);
  encodePartial(c.out, op.shape.type, ntValue(pv), bits);
  endMessage(c.out, p);
}

function finish(c: Connection, op: SimpleOp, sub: number): void {
  if (sub & Sub.DESTROY) destroyOp(c, op);
}

function getExec(c: Connection, op: SimpleOp, sub: number): void {
  dataReply(c, op, Cmd.GET, sub);
  finish(c, op, sub);
}

function monitorRequest(c: Connection, op: MonitorOp, sub: number, r: Reader): void {
  if (sub & Sub.ACK) op.ack(r.remaining >= 4 ? r.u32() : 0);
  if (sub & Sub.PROCESS) {
    if (sub & Sub.GET) op.start();
    else op.stop();
  }
  if (sub & Sub.DESTROY) {
    reply(c, Cmd.MONITOR, op.ioid, Sub.DESTROY, OK);
    destroyOp(c, op);
  }
}

/**
 * Decodes the PUT data and runs the write; `done` gets the status once the PV (and the plugin's
 * handler) finished, or at once when the request is refused before writing.
 */
function startWrite(c: Connection, op: SimpleOp, r: Reader, done: (s: Status) => void): void {
  const pv = op.channel.pv;
  if (!pv || !op.shape) {
    done(errorStatus("No PV"));
    return;
  }
  const { bits, value } = decodeBitsAndPartial(r, op.shape.type, c.typeCache);
  const v = putValue(op.shape, bits, value);
  if (v === undefined) {
    done(OK);
    return;
  }
  if (op.busy) {
    done(errorStatus("Previous put still in progress"));
    return;
  }
  if (c.pendingWrites >= c.srv.config.maxPendingWritesPerConnection) {
    c.refuseOnce("writes", `pending write limit ${c.srv.config.maxPendingWritesPerConnection}`);
    done(errorStatus("Too many writes in progress"));
    return;
  }
  const access = c.srv.access;
  const record = (result: "ok" | "denied" | "failed", old: unknown, reason?: string) =>
    access?.recordWrite({ pv, via: "pva", who: c.identity(), old, value: v, result, reason });
  if (pv.writable && !(c.rights(pv) & RIGHTS.WRITE)) {
    record("denied", pv.value, "no write access");
    done(errorStatus("Write access denied"));
    return;
  }
  op.busy = true;
  c.pendingWrites++;
  const ctx = { user: c.user, host: c.host, peer: c.peer };
  const old = pv.value;
  const end = (s: Status) => {
    op.busy = false;
    c.pendingWrites--;
    // The client may have destroyed the operation or closed meanwhile: then nobody is waiting.
    if (c.closed || c.ops.get(op.ioid) !== op) return;
    done(s);
    c.scheduleFlush();
  };
  pv.write(v, ctx).then(
    () => {
      record("ok", old);
      end(OK);
    },
    (e: unknown) => {
      const reason = e instanceof Error ? e.message : String(e);
      record("failed", old, reason);
      end(errorStatus(reason));
    },
  );
}

function putExec(c: Connection, op: SimpleOp, sub: number, r: Reader): void {
  if (sub & Sub.GET) {
    dataReply(c, op, Cmd.PUT, sub);
    finish(c, op, sub);
    return;
  }
  startWrite(c, op, r, (s) => {
    reply(c, Cmd.PUT, op.ioid, sub, s);
    finish(c, op, sub);
  });
}

function putGetExec(c: Connection, op: SimpleOp, sub: number, r: Reader): void {
  if (sub & (Sub.GET | Sub.ACK)) {
    dataReply(c, op, Cmd.PUT_GET, sub);
    finish(c, op, sub);
    return;
  }
  startWrite(c, op, r, (s) => {
    if (s.type > 1) reply(c, Cmd.PUT_GET, op.ioid, sub, s);
    else dataReply(c, op, Cmd.PUT_GET, sub);
    finish(c, op, sub);
  });
}

function rpcExec(c: Connection, op: SimpleOp, sub: number, r: Reader): void {
  const t = decodeType(r, c.typeCache);
  const value = t ? decodeValue(r, t, c.typeCache) : null;
  const handler = c.srv.rpcHandler(op.channel.name);
  const send = (s: Status, result?: { type: TypeDesc; value: unknown }) => {
    if (c.closed || c.ops.get(op.ioid) !== op) return;
    const p = beginOpReply(c.out, Cmd.RPC, op.ioid, sub, s);
    if (result) {
      encodeType(c.out, result.type);
      encodeValue(c.out, result.type, result.value);
    }
    endMessage(c.out, p);
    finish(c, op, sub);
    c.scheduleFlush();
  };
  if (!handler) {
    send(errorStatus("RPC Not Implemented"));
    return;
  }
  if (op.busy) {
    send(errorStatus("Previous RPC still in progress"));
    return;
  }
  op.busy = true;
  const req = {
    name: op.channel.name,
    type: t,
    value,
    args: rpcArgs(t, value),
    user: c.user,
    host: c.host,
    peer: c.peer,
  };
  Promise.resolve()
    .then(() => handler(req))
    .then(
      (res) => {
        op.busy = false;
        send(OK, resultTypeValue(res));
      },
      (e: unknown) => {
        op.busy = false;
        send(errorStatus(e instanceof Error ? e.message : String(e)));
      },
    );
}

function getField(c: Connection, r: Reader): void {
  const sid = r.u32();
  const ioid = r.u32();
  const sub = r.remaining > 0 ? r.string() : "";
  const ch = c.channels.get(sid);
  const p = beginOpReplyNoSub(c, ioid);
  if (!ch?.pv) {
    c.out.status(errorStatus(ch ? "No type: RPC-only channel" : "No such channel"));
    endMessage(c.out, p);
    return;
  }
  const type = ntShape(ch.pv).type;
  // pvxs ignores the sub-field and returns the whole type; pvAccessCPP returns the sub-field's.
  const hit = sub === "" ? { type } : lookup(type, sub);
  c.out.status(hit ? OK : errorStatus(`No field ${sub}`));
  if (hit) c.writeType(hit.type);
  endMessage(c.out, p);
}

/** GET_FIELD replies have no subcommand: ioid, then status. */
function beginOpReplyNoSub(c: Connection, ioid: number): number {
  const p = beginMessage(c.out, Cmd.GET_FIELD, true);
  c.out.u32(ioid);
  return p;
}
