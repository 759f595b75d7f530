// When whoever reads registryctl's output goes away (`registryctl watch |
// head -1`), a write fails with EPIPE, which Node raises as an 'error' event
// of process.stdout: unhandled, a stack trace and exit code 1. Instead the
// error is taken as "nobody is listening": later lines to that stream are
// dropped, and `outputClosed` resolves, which ends a command that runs until
// stopped (watch, logs -f, register --keep, run) the way Ctrl-C does. Any
// other write error is still reported, once.

const closed = new Set(); // the streams whose reader is gone
let resolveClosed;

// Resolves when stdout or stderr lost its reader.
export const outputClosed = new Promise((r) => {
  resolveClosed = r;
});

// Watches `streams` (process.stdout and process.stderr) for a lost reader.
export function guardOutput(streams) {
  for (const stream of streams) {
    let reported = false;
    stream.on('error', (e) => {
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') {
        closed.add(stream);
        resolveClosed();
        return;
      }
      if (reported) return;
      reported = true;
      // Where else to say it: the other stream may still be there.
      const other = streams.find((s) => s !== stream);
      other?.write(`registryctl: cannot write the output: ${e.message}\n`);
    });
  }
}

// A line writer for `stream` that stops once the output is closed.
export function lineWriter(stream) {
  return (text) => {
    if (!closed.has(stream)) stream.write(`${text}\n`);
  };
}
