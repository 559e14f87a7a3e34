/**
 * GET /plugins/{name}/progress: the validation pipeline's steps of an add of `name`, live, as
 * Server-Sent Events (event `step` per step done, then one `done` with the outcome; the stream
 * ends after `done`). The console opens it before it posts the add, so the stream also waits for
 * an add that has not begun yet (src/plugins/progress.ts). An idle stream ends after
 * {@link IDLE_MS} without an event.
 */
import { Elysia, t } from "elysia";
import { PluginName } from "../common/add-request.ts";
import type { AddProgress } from "../plugins/progress.ts";
import { sseComment, sseEvent, sseResponse } from "./sse.ts";

/** A stream that sees nothing for this long ends (a forgotten tab holds no slot for ever). */
const IDLE_MS = 120_000;

/** Open progress streams at most (the route needs no token: a bound on what anyone can hold). */
export const MAX_PROGRESS_STREAMS = 64;

export function progressRoute(progress: AddProgress) {
  let open = 0;
  return new Elysia({ name: "iocmng-console-progress" }).get(
    "/plugins/:name/progress",
    ({ params, request, server, set }) => {
      if (open >= MAX_PROGRESS_STREAMS) {
        set.status = 503;
        return { ok: false as const, message: "too many progress streams open; retry later" };
      }
      open += 1;
      let counted = true;
      const release = () => {
        if (counted) open -= 1;
        counted = false;
      };
      // The stream lasts as long as the add (a clone and an install may take minutes).
      server?.timeout(request, 0);
      let off = () => {};
      let idle: ReturnType<typeof setTimeout> | undefined;
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          let closed = false;
          const close = () => {
            if (closed) return;
            closed = true;
            release();
            off();
            clearTimeout(idle);
            try {
              controller.close();
            } catch {
              // already closed by the reader
            }
          };
          const arm = () => {
            clearTimeout(idle);
            idle = setTimeout(close, IDLE_MS);
          };
          arm();
          // A comment line first: the browser's EventSource reports the stream open at once.
          controller.enqueue(sseComment("progress"));
          off = progress.subscribe(params.name, (e) => {
            if (closed) return;
            controller.enqueue(sseEvent(e.type, e));
            arm();
            if (e.type === "done") close();
          });
          request.signal.addEventListener("abort", close);
        },
        cancel() {
          release();
          off();
          clearTimeout(idle);
        },
      });
      return sseResponse(stream);
    },
    {
      params: t.Object({ name: PluginName }),
      detail: {
        tags: ["console"],
        summary:
          "The validation steps of an add of this plugin, live (text/event-stream, events `step` and `done`)",
      },
    },
  );
}
