// Turns sampled token bytes into streamable text: a token may end inside a multi-byte UTF-8
// character, and the text may be about to spell a stop string, so a piece is only released when
// it holds whole characters and cannot be the start of a stop string.

/** The piece to send now ('' for none); `stopped` once a stop string has appeared. */
export interface Released {
  piece: string;
  stopped: boolean;
}

export class StreamingText {
  private readonly decoder = new TextDecoder('utf-8');
  private readonly stops: readonly string[];
  private text = '';
  private released = 0;
  private stoppedAt = -1;

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  /** Everything released so far; after a stop, the text before the stop string. */
  get value(): string {
    return this.text.slice(0, this.released);
  }

  /** Adds a token's bytes; releases what is safe (whole characters, no possible stop prefix). */
  push(bytes: Uint8Array): Released {
    if (this.stoppedAt >= 0) return { piece: '', stopped: true };
    const searchFrom = Math.max(0, this.released - this.longestStop() + 1);
    this.text += this.decoder.decode(bytes, { stream: true });
    const at = this.firstStop(searchFrom);
    if (at >= 0) {
      this.stoppedAt = at;
      return { piece: this.release(at), stopped: true };
    }
    return { piece: this.release(this.text.length - this.heldBack()), stopped: false };
  }

  /** Ends the stream: the bytes of an unfinished character become U+FFFD; the rest is released. */
  flush(): string {
    if (this.stoppedAt >= 0) return '';
    this.text += this.decoder.decode();
    // Text that only looked like the start of a stop string is released now.
    const at = this.firstStop(Math.max(0, this.released - this.longestStop() + 1));
    if (at >= 0) {
      this.stoppedAt = at;
      return this.release(at);
    }
    return this.release(this.text.length);
  }

  private release(end: number): string {
    const piece = end > this.released ? this.text.slice(this.released, end) : '';
    this.released = Math.max(this.released, end);
    return piece;
  }

  private longestStop(): number {
    return this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Earliest index at or after `from` where a stop string starts; -1 when none. */
  private firstStop(from: number): number {
    let best = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    return best;
  }

  /** Length of the longest unreleased tail of the text that is a proper prefix of a stop string. */
  private heldBack(): number {
    let hold = 0;
    const tail = this.text.length - this.released;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, tail); n > hold; n--) {
        if (this.text.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    return hold;
  }
}
