// What the signed-in identity may do, learned from what registryd refuses:
// a `forbidden` answer disables the controls of its family for the rest of
// the tab's session, with the server's message as their tooltip.

const families = {
  register: ['register', 'keepalive', 'deregister', 'set_state'],
  'containers.write': ['container_create', 'container_stop', 'container_remove', 'container_extend', 'image_pull'],
  repl: ['repl_execute', 'repl_cancel'],
  deploy: ['deploy_package', 'service_action', 'undeploy', 'package_upload_begin'],
};

const refused = new Map(); // family -> message
const listeners = new Set();

export function familyOf(action) {
  for (const [family, actions] of Object.entries(families)) if (actions.includes(action)) return family;
  return null;
}

export function noteRefusal(action, error) {
  if (error?.code !== 'forbidden') return;
  const family = familyOf(action);
  if (!family || refused.has(family)) return;
  refused.set(family, error.message);
  for (const fn of listeners) fn();
}

export function refusal(family) {
  return refused.get(family) ?? null;
}

// Disables `button` while its family is refused; keeps it in sync.
export function guard(button, family) {
  const apply = () => {
    const why = refusal(family);
    button.disabled = Boolean(why) || button.dataset.busy === '1';
    if (why) button.title = why;
  };
  listeners.add(apply);
  apply();
  return apply;
}
