// registryd's web console: one page, five views, each a live subscription.
// Views are made on first visit and kept (hidden) afterwards, so their
// streams go on and switching back shows the present, not a reload.

import { connect, forgetToken, keepToken, probe, storedToken } from './connection.js';
import { h, notice, setText } from './dom.js';
import { containersView } from './views/containers.js';
import { deploymentsView } from './views/deployments.js';
import { eventsView } from './views/events.js';
import { replView } from './views/repl.js';
import { servicesView } from './views/services.js';

const views = [
  ['services', 'Services', servicesView],
  ['events', 'Events', eventsView],
  ['repl', 'REPL', replView],
  ['containers', 'Containers', containersView],
  ['deployments', 'Deployments', deploymentsView],
];

const root = document.getElementById('app');

async function start() {
  let token = storedToken();
  const access = await probe(token);
  if (access === 'unauthorized' || access === 'forbidden') {
    if (token) forgetToken();
    signIn(access === 'forbidden' ? 'This token may not read the registry.' : token ? 'That token was refused.' : '');
    return;
  }
  run(token);
}

function signIn(problem) {
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const status = h('p', { class: 'notice', role: 'alert' });
  if (problem) notice(status, problem, 'error');
  const form = h(
    'form',
    { class: 'signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to registryd'),
    h('p', {}, 'This registryd requires a token (', h('code', {}, 'registryd token new'), ' makes one).'),
    h('label', { for: 'token' }, 'Token'),
    input,
    h('button', { type: 'submit' }, 'Sign in'),
    status,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = input.value.trim();
    const access = await probe(token);
    if (access === 'ok') {
      keepToken(token);
      root.replaceChildren();
      run(token);
    } else {
      notice(status, access === 'unreachable' ? 'registryd cannot be reached.' : 'That token was refused.', 'error');
    }
  });
  root.replaceChildren(form);
  input.focus();
}

function run(token) {
  const client = connect(token);
  const state = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' }, 'connecting');
  const setState = (s, kind) => {
    setText(state, s);
    state.dataset.kind = kind;
  };
  client.on('open', () => setState('connected', 'ok'));
  client.on('reconnecting', ({ attempt, delayMs }) =>
    setState(`reconnecting (attempt ${attempt + 1}, in ${Math.round(delayMs / 100) / 10}s)`, 'warn'));
  client.on('close', () => setState('disconnected', 'warn'));

  const nav = h('nav', { 'aria-label': 'Views' });
  const main = h('main', { id: 'main', tabindex: -1 });
  const header = h(
    'header',
    {},
    h('span', { class: 'brand' }, 'registry'),
    nav,
    state,
    token
      ? h('button', {
          class: 'link',
          type: 'button',
          onclick: () => {
            forgetToken();
            location.reload();
          },
        }, 'Sign out')
      : null,
  );
  root.replaceChildren(header, main);

  const made = new Map();
  const links = new Map();
  for (const [id, label] of views) {
    const a = h('a', { href: `#${id}`, id: `nav-${id}` }, label);
    links.set(id, a);
    nav.append(a);
  }
  const show = () => {
    const id = views.some(([v]) => v === location.hash.slice(1)) ? location.hash.slice(1) : 'services';
    for (const [v, label, make] of views) {
      let section = made.get(v);
      if (v === id && !section) {
        section = h('section', { id: `view-${v}`, 'aria-label': label });
        made.set(v, section);
        main.append(section);
        make(section, client);
      }
      if (section) section.hidden = v !== id;
      if (v === id) links.get(v).setAttribute('aria-current', 'page');
      else links.get(v).removeAttribute('aria-current');
    }
    document.title = `${views.find(([v]) => v === id)[1]} · registry`;
  };
  window.addEventListener('hashchange', show);
  show();
}

start();
