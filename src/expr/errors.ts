/**
 * The one error type of the expression language. It carries the offset in the source so a
 * message can point at the offending token, and a kind so callers can tell a refused expression
 * (fix the config) from a failure at evaluation time (check the inputs).
 */

/** syntax: not an expression; unsafe: a refused construct; limit: too big; runtime: evaluation. */
export type ExprErrorKind = "syntax" | "unsafe" | "limit" | "runtime";

export class ExprError extends Error {
  /** Where the error was raised: "Rule TRIP condition", "Transform AVG" … (set by `within`). */
  where = "";
  constructor(
    readonly kind: ExprErrorKind,
    /** Message without position or context. */
    readonly detail: string,
    /** 0-based offset in the source. */
    readonly pos: number,
    /** The expression's source, when known. */
    public source = "",
  ) {
    super(detail);
    this.message = this.render();
  }

  /** Adds the expression source and a context label, refreshing `message`. */
  within(where: string, source: string): this {
    this.where = where;
    this.source = source;
    this.message = this.render();
    return this;
  }

  private render(): string {
    const head = this.where ? `${this.where}: ` : "";
    const at = this.source
      ? ` at column ${this.pos + 1} of "${clip(this.source)}"`
      : ` at column ${this.pos + 1}`;
    return `${head}${this.detail}${at}`;
  }
}

/** Keeps error messages short when an expression is huge. */
function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
