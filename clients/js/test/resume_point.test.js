// The resume bookkeeping and the backoff, without a daemon.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay } from '../src/backoff.js';
import { ResumePoint } from '../src/subscription.js';

const ev = (event, revision) => ({ event, revision, data: {} });

test('a revision is complete after its last event', () => {
  const p = new ResumePoint();
  p.startAt(3);
  assert.ok(p.accept(ev('service_registered', 5)));
  assert.equal(p.resume(), 5, 'a registration is a whole change');
  assert.ok(p.accept(ev('lease_expired', 7)));
  assert.equal(p.resume(), 6, 'service_deregistered of revision 7 is still to come');
  assert.equal(p.accept(ev('lease_expired', 7)), false, 'the replay repeats the delivered event of 7');
  assert.ok(p.accept(ev('service_deregistered', 7)));
  assert.equal(p.resume(), 7);
});

test('without service_deregistered in the filter, lease_expired completes its change', () => {
  const p = new ResumePoint(['lease_expired']);
  p.accept(ev('lease_expired', 4));
  assert.equal(p.resume(), 4);
});

test('a replay skips exactly the events of the partial revision already delivered', () => {
  const p = new ResumePoint();
  p.startAt(9);
  p.accept(ev('lease_expired', 10)); // the first of two events of revision 10; then the connection drops
  assert.equal(p.resume(), 9);
  // The server replays from 9: both events of 10, then 11.
  assert.equal(p.accept(ev('lease_expired', 10)), false);
  assert.equal(p.accept(ev('service_deregistered', 10)), true);
  assert.equal(p.accept(ev('service_registered', 11)), true);
  assert.equal(p.last, 11);
  assert.equal(p.resume(), 11);
});

test('snapshots and bookmarks complete their revision; resync_required does not', () => {
  const p = new ResumePoint();
  p.accept(ev('service_registered', 4));
  p.accept(ev('bookmark', 8));
  assert.equal(p.resume(), 8);
  p.accept(ev('resync_required', 20));
  assert.equal(p.resume(), 8);
  p.accept(ev('registry_loaded', 20));
  assert.equal(p.resume(), 20);
});

test('backoff grows, is capped and jittered within its upper half', () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2 };
  assert.equal(backoffDelay(0, opts, () => 0), 50);
  assert.equal(backoffDelay(0, opts, () => 1), 100);
  assert.equal(backoffDelay(3, opts, () => 1), 800);
  assert.equal(backoffDelay(10, opts, () => 1), 1000);
  assert.equal(backoffDelay(10, opts, () => 0), 500);
  const draws = new Set(Array.from({ length: 50 }, () => backoffDelay(2, opts)));
  assert.ok(draws.size > 10, 'jittered');
  for (const d of draws) assert.ok(d >= 200 && d <= 400);
});
