/**
 * Tokenizer of the expression language. It recognises every Python token a 2.7.9 expression
 * could contain, including the ones the language refuses (`**`, `.`, `[` after a value, `lambda`
 * …), so the parser can name the refused construct and its position instead of a vague
 * "unexpected character".
 */
import { ExprError } from "./errors.ts";

export type TokenKind = "num" | "str" | "name" | "kw" | "op" | "end";

export interface Token {
  kind: TokenKind;
  /** Operator/keyword/name text; for strings the decoded value. */
  text: string;
  /** Parsed value of a number literal. */
  num?: number;
  /** Offset of the first character in the source. */
  pos: number;
}

/** Keywords the grammar uses. */
const KEYWORDS = new Set(["and", "or", "not", "if", "else", "True", "False", "None"]);
/** Python keywords that exist but are refused; kept distinct so errors can name them. */
export const REFUSED_KEYWORDS = new Set([
  "in",
  "is",
  "lambda",
  "for",
  "await",
  "yield",
  "import",
  "from",
  "async",
  "del",
  "global",
  "nonlocal",
  "assert",
  "class",
  "def",
  "return",
  "while",
  "with",
  "try",
  "except",
  "finally",
  "raise",
  "pass",
  "break",
  "continue",
  "elif",
  "as",
]);

/** Operators, longest first so `**` wins over `*`. */
const OPERATORS = [
  "**=",
  "//=",
  ">>=",
  "<<=",
  "...",
  "**",
  "//",
  "==",
  "!=",
  "<=",
  ">=",
  "<<",
  ">>",
  ":=",
  "->",
  "+=",
  "-=",
  "*=",
  "/=",
  "%=",
  "+",
  "-",
  "*",
  "/",
  "%",
  "<",
  ">",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  ",",
  ":",
  ".",
  "=",
  "&",
  "|",
  "^",
  "~",
  "@",
  ";",
];

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const EXP = "(?:[eE][-+]?\\d[\\d_]*)?";
const NUMBER = new RegExp(
  `^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\\d[\\d_]*\\.(?:\\d[\\d_]*)?${EXP}|\\.\\d[\\d_]*${EXP}|\\d[\\d_]*${EXP})`,
);
/^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d[\d_]*)?|\d[\d_]*\.)/;

function readNumber(src: string, pos: number): Token {
  const m = NUMBER.exec(src.slice(pos, pos + 400));
  if (!m) throw new ExprError("syntax", "invalid number", pos);
  const text = m[0];
  const after = src[pos + text.length] ?? "";
  if (after === "j" || after === "J")
    throw new ExprError("unsafe", "complex numbers are not supported", pos);
  if (NAME_CHAR.test(after)) throw new ExprError("syntax", `invalid number '${text}${after}'`, pos);
  const clean = text.replace(/_/g, "");
  let num: number;
  if (/^0[xX]/.test(clean)) num = Number.parseInt(clean.slice(2), 16);
  else if (/^0[oO]/.test(clean)) num = Number.parseInt(clean.slice(2), 8);
  else if (/^0[bB]/.test(clean)) num = Number.parseInt(clean.slice(2), 2);
  else num = Number(clean);
  if (Number.isNaN(num)) throw new ExprError("syntax", `invalid number '${text}'`, pos);
  return { kind: "num", text, num, pos };
}

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  "0": "\0",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "\\": "\\",
  "'": "'",
  '"': '"',
  "\n": "",
};

function readEscape(src: string, i: number, start: number): [string, number] {
  const c = src[i] ?? "";
  const simple = ESCAPES[c];
  if (simple !== undefined) return [simple, i + 1];
  const hex = c === "x" ? 2 : c === "u" ? 4 : c === "U" ? 8 : 0;
  if (hex > 0) {
    const digits = src.slice(i + 1, i + 1 + hex);
    if (!new RegExp(`^[0-9a-fA-F]{${hex}}$`).test(digits)) {
      throw new ExprError("syntax", `truncated \\${c} escape in string`, start);
    }
    const code = Number.parseInt(digits, 16);
    if (code > 0x10ffff) throw new ExprError("syntax", "invalid \\U escape in string", start);
    return [String.fromCodePoint(code), i + 1 + hex];
  }
  return [`\\${c}`, i + 1];
}

function readString(src: string, pos: number, prefix: string): Token {
  const start = pos - prefix.length;
  const lower = prefix.toLowerCase();
  if (lower.includes("f")) throw new ExprError("unsafe", "f-strings are not allowed", start);
  if (lower.includes("b")) throw new ExprError("unsafe", "bytes literals are not allowed", start);
  const raw = lower.includes("r");
  const q = src[pos] as string;
  const triple = src.startsWith(q.repeat(3), pos);
  const close = triple ? q.repeat(3) : q;
  let i = pos + close.length;
  let out = "";
  for (;;) {
    if (i >= src.length) throw new ExprError("syntax", "unterminated string literal", start);
    if (src.startsWith(close, i)) return { kind: "str", text: out, pos: start };
    const c = src[i] as string;
    if (c === "\n" && !triple) throw new ExprError("syntax", "unterminated string literal", start);
    if (c === "\\") {
      if (raw) {
        out += c + (src[i + 1] ?? "");
        i += 2;
        continue;
      }
      const [s, next] = readEscape(src, i + 1, start);
      out += s;
      i = next;
      continue;
    }
    out += c;
    i++;
  }
}

/** Splits `src` into tokens; the last one has kind "end". */
export function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f") {
      i++;
      continue;
    }
    if (c === "#") throw new ExprError("syntax", "comments are not allowed in an expression", i);
    if (c === "\\" && src[i + 1] === "\n") {
      i += 2;
      continue;
    }
    if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(src[i + 1] ?? ""))) {
      const t = readNumber(src, i);
      tokens.push(t);
      i += t.text.length;
      continue;
    }
    if (NAME_START.test(c) || c.charCodeAt(0) > 127) {
      let j = i + 1;
      while (j < src.length && NAME_CHAR.test(src[j] as string)) j++;
      const word = src.slice(i, j);
      if ((src[j] === "'" || src[j] === '"') && /^[rRbBuUfF]{1,2}$/.test(word)) {
        const t = readString(src, j, word);
        tokens.push(t);
        i = skipString(src, j);
        continue;
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) {
        throw new ExprError("syntax", `invalid character '${c}'`, i);
      }
      tokens.push({ kind: KEYWORDS.has(word) ? "kw" : "name", text: word, pos: i });
      i = j;
      continue;
    }
    if (c === "'" || c === '"') {
      tokens.push(readString(src, i, ""));
      i = skipString(src, i);
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op === undefined) throw new ExprError("syntax", `invalid character '${c}'`, i);
    tokens.push({ kind: "op", text: op, pos: i });
    i += op.length;
  }
  tokens.push({ kind: "end", text: "", pos: src.length });
  return tokens;
}

/** Offset just past the string literal that opens at `pos` (already validated by readString). */
function skipString(src: string, pos: number): number {
  const q = src[pos] as string;
  const close = src.startsWith(q.repeat(3), pos) ? q.repeat(3) : q;
  let i = pos + close.length;
  while (!src.startsWith(close, i)) i += src[i] === "\\" ? 2 : 1;
  return i + close.length;
}
