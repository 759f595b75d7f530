// registryctl's pieces that need no daemon: the progress renderer on a
// terminal and piped, the exit code of each kind of error, the event lines
// of container events, the /metrics parser.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RegistryError } from '../src/errors.js';
import { parseMetrics } from '../src/cli/daemon_http.js';
import { exitCodeOf, exitCodes } from '../src/cli/exit_codes.js';
import { eventLine } from '../src/cli/format.js';
import { Progress, progressBar } from '../src/cli/progress.js';
import { PullDisplay } from '../src/cli/pull_display.js';

// A stream that records what is written; `columns` as a terminal's.
function sink(columns) {
  return {
    columns,
    text: '',
    write(s) {
      this.text += s;
      return true;
    },
  };
}

test('progressBar: 30 marks wide by default, the percentage after it', () => {
  assert.equal(progressBar(0), `[${' '.repeat(30)}]   0%`);
  assert.equal(progressBar(0.5), `[${'#'.repeat(15)}${' '.repeat(15)}]  50%`);
  assert.equal(progressBar(1, 10), `[${'#'.repeat(10)}] 100%`);
  assert.equal(progressBar(7), `[${'#'.repeat(30)}] 100%`, 'clamped');
});

test('Progress piped: plain lines, one per key, no control characters', () => {
  const out = sink(undefined);
  const p = new Progress(out, { isTTY: false });
  assert.equal(p.isTTY, false);
  p.update({ fraction: 0.01, text: 'uploading', key: 0 });
  p.update({ fraction: 0.02, text: 'uploading', key: 0 }); // same 5 % step: nothing
  p.update({ fraction: 0.06, text: 'uploading', key: 1 });
  p.line('installing');
  p.update({ text: 'node-1: Downloading layer1' });
  p.update({ text: 'node-1: Downloading layer1' });
  p.end();
  assert.equal(
    out.text,
    `${progressBar(0.01)} uploading\n${progressBar(0.06)} uploading\ninstalling\nnode-1: Downloading layer1\n`,
  );
  assert.doesNotMatch(out.text, /[\r\x1b]/);
});

test('Progress on a terminal: one line redrawn in place, fitted to the width', () => {
  const out = sink(40);
  const p = new Progress(out, { isTTY: true });
  p.update({ fraction: 0.5, text: 'uploading' });
  p.update({ fraction: 0.5, text: 'uploading' }); // unchanged: not redrawn
  p.update({ fraction: 1, text: 'uploading' });
  // 39 columns (the last one is left free): the bar narrows to leave room for the text.
  const half = `${progressBar(0.5, 22)} uploading`;
  const full = `${progressBar(1, 22)} uploading`;
  assert.equal(half.length, 39);
  assert.equal(out.text, `\r${half}\x1b[K\r${full}\x1b[K`);

  // A line that stays takes the redrawn line's place; end() keeps the last one.
  out.text = '';
  p.line('installing');
  p.update({ text: 'x'.repeat(100) });
  p.end();
  assert.equal(out.text, `\r\x1b[Kinstalling\n\r${'x'.repeat(38)}…\x1b[K\n`);
  for (const drawn of out.text.split(/[\r\n]/)) assert.ok(drawn.replace('\x1b[K', '').length < 40, drawn);

  // A narrow terminal: the bar keeps 10 marks, the line is cut.
  const narrow = sink(20);
  new Progress(narrow, { isTTY: true }).update({ fraction: 0.3, text: 'uploading: received 3 of 10 bytes' });
  assert.equal(narrow.text, `\r${`${progressBar(0.3, 10)} uploading`.slice(0, 18)}…\x1b[K`);
  // No width known: 80 columns.
  const unknown = sink(0);
  new Progress(unknown, { isTTY: true }).update({ text: 'y'.repeat(200) });
  assert.equal(unknown.text, `\r${'y'.repeat(78)}…\x1b[K`);
});

test("PullDisplay: the bar counts a node's layers, complete ones in full; piped, a line per layer and status", () => {
  const events = [
    { engine: 'a', reference: 'app:1', id: 'l1', status: 'Pulling fs layer', progress: '' },
    { engine: 'a', reference: 'app:1', id: 'l1', status: 'Downloading', progress: '[=> ]', current: 30, total: 100 },
    { engine: 'a', reference: 'app:1', id: 'l2', status: 'Downloading', progress: '[=> ]', current: 50, total: 300 },
    { engine: 'a', reference: 'app:1', id: 'l1', status: 'Download complete', progress: '' },
    { engine: 'a', reference: 'app:1', id: 'l2', status: 'Downloading', progress: '[=> ]', current: 100, total: 300 },
  ];
  const tty = sink(200);
  const onTerminal = new PullDisplay(new Progress(tty, { isTTY: true }));
  for (const e of events) onTerminal.show(e);
  onTerminal.end({ engine: 'a', reference: 'app:1', end: true });
  const draws = tty.text.split('\r').filter(Boolean);
  assert.deepEqual(draws, [
    'a: Pulling fs layer l1\x1b[K',
    `${progressBar(30 / 100)} a: Downloading l1\x1b[K`,
    `${progressBar(80 / 400)} a: Downloading l2\x1b[K`,
    `${progressBar(150 / 400)} a: Download complete l1\x1b[K`,
    `${progressBar(200 / 400)} a: Downloading l2\x1b[K`,
    '\x1b[Ka: pulled app:1\n',
  ]);

  const piped = sink(undefined);
  const inLog = new PullDisplay(new Progress(piped, { isTTY: false }));
  for (const e of events) inLog.show(e);
  inLog.end({ engine: 'a', reference: 'app:1', end: true, error: { code: 'unavailable', message: 'disk full' } });
  assert.equal(
    piped.text,
    'a: Pulling fs layer l1\na: Downloading l1\na: Downloading l2\na: Download complete l1\na: failed: unavailable: disk full\n',
  );
});

test('exit codes: refused 1, unreachable 69, not permitted 77; run keeps 125 for its own failures', () => {
  const e = (code, cause) => new RegistryError(code, 'm', cause ? { cause } : {});
  assert.equal(exitCodeOf(e('not_found')), exitCodes.failed);
  assert.equal(exitCodeOf(e('invalid_request')), 1);
  assert.equal(exitCodeOf(e('unavailable')), 1, "registryd's own unavailable is an answer");
  assert.equal(exitCodeOf(e('not_connected')), 69);
  assert.equal(exitCodeOf(e('connection_lost')), 69);
  assert.equal(exitCodeOf(e('timeout')), 69);
  assert.equal(exitCodeOf(e('forbidden')), 77);
  assert.equal(exitCodeOf(e('unauthorized')), 77);
  assert.equal(exitCodeOf(e('not_connected', e('unauthorized'))), 77, 'the last connection error was a 401');
  assert.equal(exitCodeOf(e('not_connected'), 125), 125);
  assert.equal(exitCodeOf(e('forbidden'), 125), 77);
});

// Container events as docs/protocol.md ("Container events") shows them.
const container = {
  lease_id: 2,
  container_id: '6e01f47f837d2e8d6ed0aa',
  name: 'hungry_hertz',
  image: 'localhost/registry-busybox:latest',
  engine: 'node-1',
  state: 'exited',
  exit_code: 137,
  ttl_seconds: 2,
};

test('watch lines for container events: the container, then what changed', () => {
  assert.equal(
    eventLine({
      event: 'container_state_changed',
      revision: 8,
      data: { container, previous_state: 'running', state: 'exited', reason: '' },
    }),
    '8 container_state_changed 6e01f47f837d (hungry_hertz) running -> exited exit_code=137 ' +
      'image=localhost/registry-busybox:latest engine=node-1',
  );
  assert.equal(
    eventLine({
      event: 'container_state_changed',
      revision: 3,
      data: { container: { ...container, name: '', state: 'created', exit_code: undefined }, state: 'created', reason: '' },
    }),
    '3 container_state_changed 6e01f47f837d created image=localhost/registry-busybox:latest engine=node-1',
  );
  assert.equal(
    eventLine({
      event: 'container_state_changed',
      revision: 9,
      data: { container: { ...container, state: 'removed' }, previous_state: 'exited', state: 'removed', reason: 'lease_expired' },
    }),
    '9 container_state_changed 6e01f47f837d (hungry_hertz) exited -> removed exit_code=137 ' +
      'image=localhost/registry-busybox:latest engine=node-1 (lease_expired)',
  );
  assert.equal(
    eventLine({ event: 'lease_expired', revision: 7, data: { lease_id: 2, container, reason: 'ttl' } }),
    '7 lease_expired 6e01f47f837d (hungry_hertz) lease=2 reason=ttl',
  );
  assert.equal(
    eventLine({
      event: 'container_reap_failed',
      revision: 4,
      data: { container, attempts: 3, error: { code: 'unavailable', message: 'engine busy' } },
    }),
    '4 container_reap_failed 6e01f47f837d (hungry_hertz) attempts=3 error=unavailable: engine busy',
  );
  // A service's lease_expired is unchanged.
  assert.equal(
    eventLine({ event: 'lease_expired', revision: 2, data: { lease_id: 1, instance_id: 'api-1', name: 'api', reason: 'ttl' } }),
    '2 lease_expired api-1 lease=1 reason=ttl',
  );
});

test('parseMetrics reads samples with labels, escapes and comments', () => {
  const samples = parseMetrics(
    '# HELP registryd_build_info x\n# TYPE registryd_build_info gauge\n' +
      'registryd_build_info{version="0.2.0",compiler="gcc \\"12\\""} 1\n' +
      'registryd_revision 42\nprocess_start_time_seconds 1.5e9\n\n',
  );
  assert.deepEqual(samples, [
    { name: 'registryd_build_info', labels: { version: '0.2.0', compiler: 'gcc "12"' }, value: 1 },
    { name: 'registryd_revision', labels: {}, value: 42 },
    { name: 'process_start_time_seconds', labels: {}, value: 1.5e9 },
  ]);
});
