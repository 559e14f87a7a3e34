/**
 * The message of anything thrown: an Error's message (its name when the message is empty, so a
 * bare `new TypeError()` still says something), otherwise its string form.
 */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}
