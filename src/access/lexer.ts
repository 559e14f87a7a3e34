/**
 * Tokens of an EPICS access security file (.acf), with the lexical rules of asLib: unquoted names
 * are runs of `[a-zA-Z0-9_+-:.[]<>;]`, a run that is exactly UAG, HAG, ASG, RULE, CALC or INPA..INPL
 * is a keyword (case-sensitive), a run of digits is an integer, `"…"` is a string whose backslash
 * escapes are kept as written (asLib does not unescape), `#` starts a comment to the end of the
 * line, punctuation is `( ) { } ,`. Anything else is an error with its line and column.
 */

/** A malformed access security file: where and why. Lines and columns count from 1. */
export class AcfError extends Error {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
    readonly file = "",
  ) {
    super(`${file ? `${file}:` : ""}${line}:${column}: ${reason}`);
    this.name = "AcfError";
  }
}

export type TokenKind =
  | "UAG"
  | "HAG"
  | "ASG"
  | "RULE"
  | "CALC"
  | "INP"
  | "int"
  | "string"
  | "("
  | ")"
  | "{"
  | "}"
  | ","
  | "eof";

export interface Token {
  kind: TokenKind;
  /** Name, string contents or digits; for INP the input letter. */
  text: string;
  line: number;
  column: number;
  /** True for a "quoted" string (never a keyword). */
  quoted: boolean;
}

/** Longest name or string accepted (characters); asLib has no limit, we bound memory per token. */
export const MAX_TOKEN_LENGTH = 4096;

const KEYWORDS = new Set(["UAG", "HAG", "ASG", "RULE", "CALC"]);
const INP_RE = /^INP[A-L]$/;
const PUNCT = new Set(["(", ")", "{", "}", ","]);

function isNameChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x41 && c <= 0x5a) || // A-Z
    (c >= 0x30 && c <= 0x3b) || // 0-9 : ;
    c === 0x5f || // _
    c === 0x2d || // -
    c === 0x2b || // +
    c === 0x2e || // .
    c === 0x5b || // [
    c === 0x5d || // ]
    c === 0x3c || // <
    c === 0x3e // >
  );
}

function describe(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (code >= 0x21 && code <= 0x7e) return `'${ch}'`;
  return `0x${code.toString(16).padStart(2, "0")}`;
}

/** A pull lexer over the whole file text. */
export class AcfLexer {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly text: string,
    private readonly file = "",
  ) {}

  error(reason: string, line: number, column: number): AcfError {
    return new AcfError(reason, line, column, this.file);
  }

  next(): Token {
    this.skipBlank();
    const line = this.line;
    const column = this.pos - this.lineStart + 1;
    const tok = (kind: TokenKind, text: string, quoted = false): Token => ({
      kind,
      text,
      line,
      column,
      quoted,
    });
    if (this.pos >= this.text.length) return tok("eof", "");
    const ch = this.text[this.pos] as string;
    if (PUNCT.has(ch)) {
      this.pos++;
      return tok(ch as TokenKind, ch);
    }
    if (ch === '"') return tok("string", this.quoted(line, column), true);
    if (isNameChar(ch.charCodeAt(0))) {
      const start = this.pos;
      while (this.pos < this.text.length && isNameChar(this.text.charCodeAt(this.pos))) {
        this.pos++;
        if (this.pos - start > MAX_TOKEN_LENGTH) {
          throw this.error(`name longer than ${MAX_TOKEN_LENGTH} characters`, line, column);
        }
      }
      const word = this.text.slice(start, this.pos);
      if (KEYWORDS.has(word)) return tok(word as TokenKind, word);
      if (INP_RE.test(word)) return tok("INP", word.slice(3));
      if (/^[0-9]+$/.test(word)) return tok("int", word);
      return tok("string", word);
    }
    throw this.error(
      `invalid character ${describe(String.fromCodePoint(this.text.codePointAt(this.pos) ?? 0))}`,
      line,
      column,
    );
  }

  private skipBlank(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (c === " " || c === "\t" || c === "\r") this.pos++;
      else if (c === "\n") {
        this.pos++;
        this.line++;
        this.lineStart = this.pos;
      } else if (c === "#") {
        const nl = t.indexOf("\n", this.pos);
        this.pos = nl < 0 ? t.length : nl;
      } else return;
    }
  }

  private quoted(line: number, column: number): string {
    const t = this.text;
    const start = ++this.pos;
    while (this.pos < t.length) {
      const c = t[this.pos];
      if (c === '"') {
        const s = t.slice(start, this.pos++);
        return s;
      }
      if (c === "\n") {
        throw this.error("newline in quoted string, closing quote missing", line, column);
      }
      // A backslash escapes the next character (kept as written); a backslash-newline is still
      // a newline inside the string, which asLib refuses.
      this.pos += c === "\\" && t[this.pos + 1] !== "\n" ? 2 : 1;
      if (this.pos - start > MAX_TOKEN_LENGTH) {
        throw this.error(`string longer than ${MAX_TOKEN_LENGTH} characters`, line, column);
      }
    }
    throw this.error("end of file in quoted string, closing quote missing", line, column);
  }
}
