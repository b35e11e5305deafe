// Sampling that keeps the text valid UTF-8 (`--valid-utf8`, the chat's "Valid UTF-8 only"). A
// byte-level BPE token may hold any bytes, so an early checkpoint happily samples a lead byte and
// then an ASCII letter, and the reader sees U+FFFD. Before each draw, the logits of tokens whose
// bytes would make the pending byte sequence ill-formed are set to -Infinity; a sequence that can
// still complete (a lead byte waiting for its continuation bytes) is allowed.
//
// Hand-written: the well-formedness table is Unicode's Table 3-7 (eight lines), and what is needed is
// the state between tokens (the decoder's own state is not exposed by TextDecoder).

/** The text so far ends on a whole character. */
const COMPLETE = 0;
const INVALID = -1;

/** Waiting for `need` more continuation bytes, the next one in lo..hi. */
const pending = (need: number, lo: number, hi: number): number => (need << 16) | (lo << 8) | hi;

/** The state after a first byte (Unicode Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF). */
function lead(b: number): number {
  if (b < 0x80) return COMPLETE;
  if (b >= 0xc2 && b <= 0xdf) return pending(1, 0x80, 0xbf);
  if (b === 0xe0) return pending(2, 0xa0, 0xbf);
  if (b === 0xed) return pending(2, 0x80, 0x9f);
  if (b >= 0xe1 && b <= 0xef) return pending(2, 0x80, 0xbf);
  if (b === 0xf0) return pending(3, 0x90, 0xbf);
  if (b >= 0xf1 && b <= 0xf3) return pending(3, 0x80, 0xbf);
  if (b === 0xf4) return pending(3, 0x80, 0x8f);
  return INVALID;
}

function step(state: number, b: number): number {
  if (state === COMPLETE) return lead(b);
  const need = state >> 16;
  if (b < ((state >> 8) & 0xff) || b > (state & 0xff)) return INVALID;
  return need === 1 ? COMPLETE : pending(need - 1, 0x80, 0xbf);
}

/**
 * The state after `bytes` from `state`, or -1 when they make the sequence ill-formed. A token with
 * no bytes (a special such as <|im_end|>) is only allowed on a whole character: after it the pending
 * bytes could never complete.
 */
export function advanceUtf8(state: number, bytes: Uint8Array): number {
  if (bytes.length === 0) return state === COMPLETE ? COMPLETE : INVALID;
  let s = state;
  for (const b of bytes) {
    s = step(s, b);
    if (s === INVALID) return INVALID;
  }
  return s;
}

/** Keeps one generation's text valid UTF-8: mask() before each draw, accept() the id drawn. */
export class Utf8Constraint {
  private state = COMPLETE;

  /**
   * `tokenBytes[id]`: the bytes of each id of the vocabulary (empty for specials). `allowedByState`
   * (per state, a handful are reachable: which ids may come next) may be shared by the generations
   * of one vocabulary; see fresh().
   */
  constructor(
    private readonly tokenBytes: readonly Uint8Array[],
    private readonly allowedByState = new Map<number, Uint8Array>(),
  ) {}

  /** The constraint of a byte-level tokenizer's vocabulary. */
  static forTokenizer(tokenizer: { vocabSize: number; decodeBytes(ids: readonly number[]): Uint8Array }) {
    return new Utf8Constraint(Array.from({ length: tokenizer.vocabSize }, (_, id) => tokenizer.decodeBytes([id])));
  }

  /** A constraint for a new generation (nothing pending) sharing this one's table and masks. */
  fresh(): Utf8Constraint {
    return new Utf8Constraint(this.tokenBytes, this.allowedByState);
  }

  /** True while the text ends on a whole character. */
  get complete(): boolean {
    return this.state === COMPLETE;
  }

  /** Sets to -Infinity the logit of every id that would make the text ill-formed. */
  mask(logits: Float32Array): void {
    const allowed = this.allowed();
    if (!allowed.includes(1)) return; // no id can continue (a table without byte tokens): leave the draw alone
    for (let id = 0; id < logits.length; id++) if (id >= allowed.length || !allowed[id]) logits[id] = -Infinity;
  }

  accept(id: number): void {
    const next = advanceUtf8(this.state, this.tokenBytes[id] ?? new Uint8Array());
    // Only reached when no id could continue (see mask): start over on the next character.
    this.state = next === INVALID ? COMPLETE : next;
  }

  private allowed(): Uint8Array {
    let allowed = this.allowedByState.get(this.state);
    if (allowed === undefined) {
      allowed = Uint8Array.from(this.tokenBytes, (bytes) => (advanceUtf8(this.state, bytes) === INVALID ? 0 : 1));
      this.allowedByState.set(this.state, allowed);
    }
    return allowed;
  }
}
