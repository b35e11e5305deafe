// The pre-tokenizer of the byte-level BPE: text is cut into pieces first, and merges never cross
// a piece boundary. Its regex source is saved in every tokenizer.json (versioned), so a saved
// tokenizer encodes identically later.

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

export function compilePretokenizer(source: string): RegExp {
  return new RegExp(source, PRETOKENIZER_FLAGS);
}
