// Reconnect delays: exponential from `initialDelayMs` up to `maxDelayMs`,
// each drawn at random from its upper half ("equal jitter"), so that many
// clients dropped by one daemon restart do not come back in lockstep.
export const defaultBackoff = Object.freeze({ initialDelayMs: 100, maxDelayMs: 5000, factor: 2 });

export function backoffDelay(attempt, options = defaultBackoff, random = Math.random) {
  const { initialDelayMs, maxDelayMs, factor } = { ...defaultBackoff, ...options };
  const ceiling = Math.min(maxDelayMs, initialDelayMs * factor ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
