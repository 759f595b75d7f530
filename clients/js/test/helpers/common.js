// Small helpers shared by the tests.
import { RegistryClient } from '../../src/index.js';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A client with short bounds, closed by the test's after().
export function client(url, options = {}) {
  return new RegistryClient(url, {
    requestTimeoutMs: 5000,
    connectWaitMs: 5000,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    ...options,
  });
}

// A service object of the protocol with one HTTP endpoint.
export function service(name, instanceId, port = 8080) {
  return {
    name,
    instance_id: instanceId,
    endpoints: [{ name: 'http', address: '127.0.0.1', port, protocol: 'http' }],
  };
}

// The next value of an async iterator, or a rejection after `ms`.
export async function next(iterator, ms = 10_000, what = 'an event') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([iterator.next(), timeout]);
    if (r.done) throw new Error(`iterator ended while waiting for ${what}`);
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

// Waits until `predicate()` holds (polling), or throws after `ms`.
export async function until(predicate, ms = 5000, what = 'the condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

// The next line of a process's output (an async iterator of lines, e.g. from
// readline), or a rejection once `ms` passed or the output ended.
export async function nextLine(lines, ms = 15_000) {
  let t;
  const timeout = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`no output line within ${ms} ms`)), ms);
  });
  try {
    const r = await Promise.race([lines.next(), timeout]);
    if (r.done) throw new Error('the output ended');
    return r.value;
  } finally {
    clearTimeout(t);
  }
}
