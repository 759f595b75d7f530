// Progress output (an upload, an image pull). On a terminal one line is
// redrawn in place ("\r", erase to the end of the line), its bar narrowed
// and its text cut to the terminal's width so that it never wraps; piped, it
// prints plain lines without control characters, one each time the caller's
// `key` changes (a stage, a 5 % step), so that a log is not flooded.

const fullBar = 30;

// "[#########                     ]  30%", `width` characters between the brackets.
export function progressBar(fraction, width = fullBar) {
  const f = Math.min(1, Math.max(0, fraction));
  return `[${'#'.repeat(Math.round(f * width)).padEnd(width)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

// `text` in at most `columns` characters (cut with "…").
function fit(text, columns) {
  if (text.length <= columns) return text;
  return columns <= 1 ? text.slice(0, columns) : `${text.slice(0, columns - 1)}…`;
}

export class Progress {
  #stream;
  #tty;
  #drawn = false; // a redrawn line is on the screen, the cursor at its end
  #last = ''; // the text last drawn (terminal) or the key last printed (piped)

  // `isTTY` defaults to the stream's (tests pass true for a fake stream).
  constructor(stream, { isTTY = Boolean(stream.isTTY) } = {}) {
    this.#stream = stream;
    this.#tty = isTTY;
  }

  get isTTY() {
    return this.#tty;
  }

  // The terminal's width; 80 when it does not say.
  get #columns() {
    return this.#stream.columns > 0 ? this.#stream.columns : 80;
  }

  // Progress of one thing: `fraction` in [0, 1] (null: no bar), `text` after
  // the bar. Piped, a line is printed only when `key` differs from the last
  // one printed (default: the text itself).
  update({ fraction = null, text = '', key = undefined }) {
    if (!this.#tty) {
      const k = key ?? text;
      if (k === this.#last) return;
      this.#last = k;
      this.#stream.write(`${fraction === null ? text : `${progressBar(fraction)} ${text}`.trimEnd()}\n`);
      return;
    }
    // Leave a column free: a line that fills the last one wraps on some terminals.
    const columns = this.#columns - 1;
    let line = text;
    if (fraction !== null) {
      // The bar gives way to the text, down to 10 marks.
      const width = Math.max(10, Math.min(fullBar, columns - text.length - 8));
      line = `${progressBar(fraction, width)} ${text}`.trimEnd();
    }
    line = fit(line, columns);
    if (this.#drawn && line === this.#last) return;
    this.#last = line;
    this.#drawn = true;
    this.#stream.write(`\r${line}\x1b[K`);
  }

  // A line that stays (a stage reached, a node done). On a terminal it takes
  // the place of the redrawn line; the next update() draws below it.
  line(text) {
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[K');
    this.#forget();
    this.#stream.write(`${text}\n`);
  }

  // Ends the redrawn line, leaving it on the screen.
  end() {
    if (this.#tty && this.#drawn) this.#stream.write('\n');
    this.#forget();
  }

  // Nothing redrawn is on the screen any more (piped, the last key still counts).
  #forget() {
    if (!this.#tty) return;
    this.#drawn = false;
    this.#last = '';
  }
}
