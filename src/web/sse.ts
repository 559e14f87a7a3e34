/**
 * Server-Sent Events for the console's live routes (log lines, add progress): one event's bytes
 * and the streaming response that carries them.
 */

const utf8 = new TextEncoder();

/** One event: optional `id` (the browser resends the last one on reconnect), a name, JSON data. */
export function sseEvent(event: string, data: unknown, id?: number): Uint8Array {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return utf8.encode(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** A comment line (ignored by EventSource; sent first so the browser reports the stream open). */
export function sseComment(text: string): Uint8Array {
  return utf8.encode(`: ${text}\n\n`);
}

/** The response streaming `stream` as text/event-stream, never cached. */
export function sseResponse(stream: ReadableStream<Uint8Array>): Response {
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    },
  });
}
