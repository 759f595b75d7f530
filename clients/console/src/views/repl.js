// REPL: pick a language, write code (coloured as typed), give stdin and
// args, Run. Output streams as the program writes it; Cancel stops it; the
// queue position shows while it waits; exit code and duration at the end.

import { h, notice, setText } from '../dom.js';
import { paint } from '../highlight.js';
import { guard, noteRefusal } from '../permissions.js';

const samples = {
  python: 'import time\nfor i in range(3):\n    print("tick", i, flush=True)\n    time.sleep(0.5)\n',
  node: 'for (let i = 0; i < 3; i++) console.log("tick", i);\n',
};

export function replView(section, client) {
  const status = h('p', { class: 'notice', role: 'status' });
  const language = h('select', { id: 'repl-language' });
  const pre = h('pre', { class: 'code-colour', 'aria-hidden': 'true' });
  const code = h('textarea', { id: 'repl-code', spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', rows: 14 });
  const stdin = h('textarea', { id: 'repl-stdin', rows: 3, spellcheck: 'false' });
  const args = h('input', { id: 'repl-args', type: 'text', placeholder: 'space-separated' });
  const run = h('button', { type: 'button', id: 'repl-run' }, 'Run');
  const cancel = h('button', { type: 'button', id: 'repl-cancel', disabled: true }, 'Cancel');
  const queue = h('span', { id: 'repl-queue', class: 'count', 'aria-live': 'polite' });
  const output = h('pre', { id: 'repl-output', class: 'output', 'aria-live': 'polite', 'aria-label': 'Output', tabindex: 0 });
  const result = h('p', { id: 'repl-result', class: 'result', role: 'status' });
  const updateRun = guard(run, 'repl');

  const recolour = () => paint(pre, code.value, language.value);
  code.addEventListener('input', recolour);
  code.addEventListener('scroll', () => {
    pre.scrollTop = code.scrollTop;
    pre.scrollLeft = code.scrollLeft;
  });
  code.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey) {
      // Indent in the editor; Escape then Tab leaves it (keyboard users are not trapped).
      if (code.dataset.escaped === '1') return;
      e.preventDefault();
      code.setRangeText('    ', code.selectionStart, code.selectionEnd, 'end');
      recolour();
    } else if (e.key === 'Escape') code.dataset.escaped = '1';
    else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run.click();
    else code.dataset.escaped = '0';
  });
  language.addEventListener('change', () => {
    if (!code.value.trim() || Object.values(samples).includes(code.value)) code.value = samples[language.value] ?? '';
    recolour();
  });

  section.append(
    h('div', { class: 'toolbar' }, h('label', { for: 'repl-language' }, 'Language'), language, run, cancel, queue),
    h('label', { for: 'repl-code' }, 'Code (Ctrl+Enter runs; Escape then Tab leaves the editor)'),
    h('div', { class: 'editor' }, pre, code),
    h('div', { class: 'io' },
      h('div', {}, h('label', { for: 'repl-stdin' }, 'stdin'), stdin),
      h('div', {}, h('label', { for: 'repl-args' }, 'args'), args)),
    h('h2', {}, 'Output'), output, result, status,
  );

  let execution = null;
  const line = (stream, data) => {
    const atBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 8;
    output.append(h('span', { class: stream }, data));
    if (atBottom) output.scrollTop = output.scrollHeight;
  };

  run.addEventListener('click', async () => {
    if (execution) return;
    output.replaceChildren();
    setText(result, '');
    setText(queue, '');
    run.dataset.busy = '1';
    updateRun();
    try {
      execution = await client.execute(
        {
          language: language.value,
          version: language.selectedOptions[0]?.dataset.version || undefined,
          code: code.value,
          stdin: stdin.value || undefined,
          args: args.value.trim() ? args.value.trim().split(/\s+/) : undefined,
        },
        { onQueued: (position) => setText(queue, `queued: position ${position}`) },
      );
      cancel.disabled = false;
      for await (const chunk of execution.output) {
        setText(queue, '');
        line(chunk.stream, chunk.data);
      }
      const r = await execution.finished;
      const how = r.cancelled ? 'cancelled' : r.timed_out ? 'timed out' : r.error ? r.error.message
        : r.exit_code !== null ? `exit code ${r.exit_code}` : r.signal !== null ? `signal ${r.signal}` : 'ended';
      if (r.compile && r.compile.exit_code !== 0) line('stderr', r.compile.stderr);
      setText(result, `${how} · ${r.duration_ms} ms${r.truncated ? ' · output truncated' : ''}`);
      result.dataset.kind = r.exit_code === 0 ? 'ok' : 'warn';
    } catch (e) {
      noteRefusal('repl_execute', e);
      notice(status, `${e.code ?? 'error'}: ${e.message}`, 'error');
    } finally {
      execution = null;
      cancel.disabled = true;
      setText(queue, '');
      delete run.dataset.busy;
      updateRun();
    }
  });
  cancel.addEventListener('click', async () => {
    try {
      await execution?.cancel();
    } catch (e) {
      notice(status, `Cancel failed: ${e.message}`, 'error');
    }
  });

  (async () => {
    try {
      const { languages } = await client.replLanguages();
      // One option per version: the value is the language (samples and
      // colouring go by it), the version rides along. repl_languages lists a
      // language's default version first, so the first option is a default.
      language.replaceChildren(
        ...languages.map((l) =>
          h('option', { value: l.name, dataset: { version: l.version } }, `${l.name} ${l.version}`),
        ),
      );
      code.value = samples[language.value] ?? '';
      recolour();
      if (!languages.length) notice(status, 'No language is configured.', 'warn');
    } catch (e) {
      notice(status, e.code === 'unavailable' ? 'REPL execution is not enabled on this registryd.' : `${e.code}: ${e.message}`, 'warn');
      run.disabled = true;
    }
  })();
}
