// Listings in pages (docs/protocol.md, "Limits") against a real registryd
// whose pages hold at most 3 items.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { RegistryError } from '../src/index.js';
import { client, service } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

let daemon;
let c;

before(async () => {
  daemon = await startRegistryd({ config: 'listings:\n  max_page_items: 3\n' });
  c = client(daemon.url);
  for (let i = 1; i <= 7; i++) await c.register({ service: service('pg', `pg-${i}`, 7000 + i) });
});

after(async () => {
  await c?.close();
  await daemon?.dispose();
});

test('listServicesPages yields the pages of one revision', async () => {
  const pages = [];
  for await (const page of c.listServicesPages({ name: 'pg', limit: 2 })) {
    pages.push(page);
    // A change between pages does not show in the listing.
    if (pages.length === 1) await c.deregister('pg-7');
  }
  assert.deepEqual(
    pages.map((p) => p.services.map((s) => s.instance_id)),
    [['pg-1', 'pg-2'], ['pg-3', 'pg-4'], ['pg-5', 'pg-6'], ['pg-7']],
  );
  assert.ok(pages.every((p) => p.revision === pages[0].revision));
  assert.equal(pages[0].remaining, 5);
  assert.equal(pages.at(-1).continue, undefined);
});

test('listServices and listEndpoints gather every page; the server bounds a page', async () => {
  const all = await c.listServices({ name: 'pg' });
  assert.deepEqual(
    all.services.map((s) => s.instance_id),
    ['pg-1', 'pg-2', 'pg-3', 'pg-4', 'pg-5', 'pg-6'],
  );
  const one = await c.listServices({ name: 'pg', limit: 100 });
  assert.equal(one.services.length, 3);
  assert.equal(one.remaining, 3);
  const endpoints = await c.listEndpoints({ service: 'pg' });
  assert.equal(endpoints.endpoints.length, 6);
  const byName = await c.getService({ name: 'pg' });
  assert.equal(byName.services.length, 6);
  assert.equal(byName.revision, all.revision);
});

test('a finished listing is continue_expired', async () => {
  let last;
  for await (const page of c.listServicesPages({ name: 'pg' })) last = page;
  const first = await c.listServices({ name: 'pg', limit: 5 });
  for await (const page of c.listServicesPages({ continue: first.continue })) last = page;
  assert.equal(last.services.length, 3);  // pg-4 to pg-6: the server bounds the first page to 3
  await assert.rejects(c.listServices({ continue: first.continue }), (err) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'continue_expired');
    return true;
  });
});
