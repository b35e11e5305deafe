// The pre-tokenizer of the byte-level BPE: text is cut into pieces first, and merges never cross
// a piece boundary. A tokenizer.json names its pre-tokenizer by id from the fixed list below, so a
// saved tokenizer encodes identically later and no regex from a file is ever compiled (a crafted
// one could backtrack for minutes on a short prompt).

export const PRETOKENIZER_FLAGS = 'gv';

// Scripts written without spaces between words: a run of them is one pretoken, so a 5- or
// 7-character poem line is a single unit and merges can learn frequent words inside it.
const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Hangul}\\u30FC';

/**
 * Pre-tokenizer v1: Qwen2's pattern with CJK runs split off from other letters and kept free of
 * punctuation (Qwen glues "，" onto the following word; here "，" and "。\n" stand alone, which
 * suits poetry). Alternatives, in order: English contractions; CJK runs (with combining marks);
 * other letter runs with one optional leading space/symbol; single digits; symbol/punctuation runs
 * (fullwidth included) with trailing newlines; newline runs; spaces not before a word; other spaces.
 */
export const PRETOKENIZER_V1 = [
  "'(?:[sdmtSDMT]|[lL][lL]|[vV][eE]|[rR][eE])",
  `[${CJK}][${CJK}\\p{M}]*`,
  `[^\\r\\n\\p{L}\\p{N}]?[[\\p{L}\\p{M}]--[${CJK}]]+`,
  '\\p{N}',
  ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*',
  '\\s*[\\r\\n]+',
  '\\s+(?!\\S)',
  '\\s+',
].join('|');

/**
 * Calls visit for each pretoken of text, in order. Text the pattern does not cover (only possible
 * with a hand-edited pattern) is passed through as its own piece, so encoding never drops bytes.
 */
export function forEachPretoken(text: string, pattern: RegExp, visit: (piece: string) => void): void {
  pattern.lastIndex = 0;
  let covered = 0; // text[0 .. covered) has been visited
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    const piece = match[0];
    if (piece.length === 0) {
      // Step a whole code point so an empty match can never split a surrogate pair.
      const codePoint = text.codePointAt(match.index) ?? 0;
      pattern.lastIndex = match.index + (codePoint > 0xffff ? 2 : 1);
      continue;
    }
    if (match.index > covered) visit(text.slice(covered, match.index));
    visit(piece);
    covered = match.index + piece.length;
  }
  if (covered < text.length) visit(text.slice(covered));
}

/** The pre-tokenizers a tokenizer.json may name, by id. Add new ones here; never change one. */
export const PRETOKENIZERS = { 'qwen2-cjk-v1': PRETOKENIZER_V1 } as const;
export type PretokenizerId = keyof typeof PRETOKENIZERS;
export const DEFAULT_PRETOKENIZER: PretokenizerId = 'qwen2-cjk-v1';

function isPretokenizerId(value: unknown): value is PretokenizerId {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(PRETOKENIZERS, value);
}

/**
 * The id a tokenizer file's `pretokenizer` field names, or undefined for anything else. Files
 * written before ids existed carry a pattern's source itself; the exact source of a listed
 * pattern maps to its id, so those files keep loading.
 */
export function pretokenizerId(value: unknown): PretokenizerId | undefined {
  if (isPretokenizerId(value)) return value;
  return (Object.keys(PRETOKENIZERS) as PretokenizerId[]).find((id) => PRETOKENIZERS[id] === value);
}

/** A fresh matcher (it carries lastIndex) for one of our own patterns. */
export function pretokenizerPattern(id: PretokenizerId): RegExp {
  return new RegExp(PRETOKENIZERS[id], PRETOKENIZER_FLAGS);
}
