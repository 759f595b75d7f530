// Deployments: upload a package (a progress bar; the client resumes an
// interrupted upload where registryd's bytes end), watch every deployment's
// stages, health gate and rollback as they happen, and act on deployed
// instances (start, stop, restart, undeploy).

import { batched, h, notice, setText, time } from '../dom.js';
import { guard, noteRefusal } from '../permissions.js';

const stages = ['checking_requirements', 'installing', 'starting', 'health_gating'];

export function deploymentsView(section, client) {
  const status = h('p', { class: 'notice', role: 'status' });
  const file = h('input', { id: 'dp-file', type: 'file', accept: '.tar.gz,.tgz,.tar,application/gzip' });
  const target = h('input', { id: 'dp-target', type: 'text', value: 'local', size: 12 });
  const deploy = h('button', { type: 'button', id: 'dp-deploy' }, 'Deploy');
  const progress = h('progress', { id: 'dp-progress', max: 1, value: 0, 'aria-label': 'Upload progress' });
  const progressText = h('span', { class: 'count', 'aria-live': 'polite' });
  const courses = h('ol', { id: 'dp-courses', class: 'courses', 'aria-label': 'Deployments, newest first' });
  const instances = h('tbody');
  const updateDeploy = guard(deploy, 'deploy');
  section.append(
    h('div', { class: 'toolbar' },
      h('label', { for: 'dp-file' }, 'Package'), file, h('label', { for: 'dp-target' }, 'Target'), target, deploy,
      progress, progressText),
    status,
    h('h2', {}, 'Deployed instances'),
    h('table', { class: 'grid', id: 'dp-instances' },
      h('thead', {}, h('tr', {}, ['Instance', 'Version', 'State', 'Health', '', '', '', ''].map((t) => h('th', { scope: 'col' }, t)))),
      instances),
    h('h2', {}, 'Deployments'),
    courses,
  );

  // instance_id -> {li, steps: Map(stage -> element), outcome}
  const running = new Map();
  // A deployment_started opens a new course; later events go to the latest one.
  const course = (d, start = false) => {
    let c = running.get(d.instance_id);
    if (c && !start) return c;
    const steps = new Map(stages.map((s) => [s, h('li', { dataset: { stage: s } }, s.replace('_', ' '))]));
    const outcome = h('p', { class: 'outcome', role: 'status' });
    const li = h('li', { class: 'course', dataset: { instance: d.instance_id } },
      h('h3', {}, `${d.package} ${d.from_version ? `${d.from_version} → ` : ''}${d.to_version} on ${d.target}`),
      h('ol', { class: 'stages' }, [...steps.values()]), outcome);
    c = { li, steps, outcome };
    running.set(d.instance_id, c);
    courses.prepend(li);
    while (courses.children.length > 50) courses.lastChild.remove();
    return c;
  };
  const mark = (c, stage, state) => {
    for (const [s, el] of c.steps) {
      if (s === stage) el.dataset.state = state;
      else if (state === 'active' && el.dataset.state === 'active') el.dataset.state = 'done';
    }
  };

  deploy.addEventListener('click', async () => {
    const f = file.files?.[0];
    if (!f) {
      notice(status, 'Choose a package archive first.', 'error');
      return;
    }
    deploy.dataset.busy = '1';
    updateDeploy();
    progress.value = 0;
    setText(progressText, '');
    try {
      const r = await client.deployPackage(
        { file: f, target: target.value.trim() || 'local' },
        {
          onEvent: (e) => {
            const p = e.data;
            if (p.stage === 'uploading' && p.bytes_total) {
              progress.value = p.bytes / p.bytes_total;
              setText(progressText, `${Math.round((100 * p.bytes) / p.bytes_total)} % uploaded`);
            } else setText(progressText, p.stage.replace('_', ' '));
          },
        },
      );
      progress.value = 1;
      notice(status, `${r.name} ${r.version} deployed as ${r.instance_id}.`, 'ok');
    } catch (e) {
      noteRefusal('deploy_package', e);
      notice(status, `Deploy failed: ${e.code}: ${e.message}`, 'error');
    } finally {
      delete deploy.dataset.busy;
      updateDeploy();
    }
  });

  const deployed = new Map();
  const act = async (action, params, what) => {
    try {
      await client.request(action, params);
      notice(status, `${what}: done.`, 'ok');
    } catch (e) {
      noteRefusal(action, e);
      notice(status, `${what}: ${e.code}: ${e.message}`, 'error');
    }
  };
  const button = (label, onclick) => {
    const b = h('button', { type: 'button', onclick }, label);
    guard(b, 'deploy');
    return b;
  };
  const renderInstances = batched(() => {
    const rows = [...deployed.values()].sort((a, b) => (a.instance_id < b.instance_id ? -1 : 1)).map((s) => {
      const id = s.instance_id;
      return h('tr', { dataset: { instance: id } },
        h('th', { scope: 'row' }, id), h('td', {}, s.version), h('td', { dataset: { state: s.state } }, s.state),
        h('td', {}, s.health?.status ?? '—'),
        ['start', 'stop', 'restart'].map((a) => h('td', {}, button(a[0].toUpperCase() + a.slice(1),
          () => act('service_action', { instance_id: id, action: a }, `${a} ${id}`)))),
        h('td', {}, button('Undeploy', () => confirm(`Undeploy ${id}?`) && act('undeploy', { instance_id: id }, `undeploy ${id}`))));
    });
    instances.replaceChildren(...rows);
  });

  (async () => {
    try {
      const sub = await client.subscribe({ snapshot: true });
      const sync = () => {
        deployed.clear();
        for (const s of sub.services.values()) if (s.metadata?.deployed_by === 'registryd') deployed.set(s.instance_id, s);
        renderInstances();
      };
      sub.on((e) => {
        const d = e.data;
        switch (e.event) {
          case 'deployment_started': course(d, true); break;
          case 'deployment_stage': mark(course(d), d.stage, 'active'); break;
          case 'deployment_succeeded': {
            const c = course(d);
            mark(c, 'health_gating', 'done');
            for (const el of c.steps.values()) if (el.dataset.state === 'active') el.dataset.state = 'done';
            setText(c.outcome, `succeeded at ${time(Date.now())}`);
            c.outcome.dataset.kind = 'ok';
            break;
          }
          case 'deployment_failed': {
            const c = course(d);
            mark(c, d.stage, 'failed');
            setText(c.outcome, `failed in ${d.stage}: ${d.error.message}`);
            c.outcome.dataset.kind = 'error';
            break;
          }
          case 'deployment_rolled_back': {
            // Instead of deployment_failed: the stage that was running is the one that failed.
            const c = course(d);
            for (const el of c.steps.values()) if (el.dataset.state === 'active') el.dataset.state = 'failed';
            setText(c.outcome, `rolled back to ${d.from_version ?? 'nothing'}${d.healthy ? '' : ' (not healthy)'}: ${d.error.message}`);
            c.outcome.dataset.kind = 'error';
            break;
          }
          default: break;
        }
        sync();
      });
      sync();
    } catch (e) {
      notice(status, `Cannot subscribe: ${e.message}`, 'error');
    }
  })();
}
