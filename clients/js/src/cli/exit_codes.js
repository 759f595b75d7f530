// registryctl's exit status, one code per kind of outcome, so that a script
// can tell "registryd said no" from "registryd is not there" (sysexits.h
// names where one fits). `run` exits with the program's status instead, and
// with its own codes (124, 125, 130: commands.js) for what is not the
// program's.

export const exitCodes = Object.freeze({
  ok: 0,
  failed: 1, // registryd refused the request (its error code is printed), or a local file failed
  usage: 2, // the command line cannot be run as given
  unavailable: 69, // EX_UNAVAILABLE: registryd unreachable, or gone or silent before it answered
  noPermission: 77, // EX_NOPERM: a 401 at the upgrade, or `forbidden`
});

export const exitCodesText = `exit codes:
  0   ok
  1   the request failed: registryd refused it (its error code and message are printed)
  2   bad usage (the command's usage is printed)
  69  registryd unreachable within --wait, the connection lost, or no answer within --timeout
  77  not permitted: HTTP 401 at the upgrade (no or a wrong token), or forbidden (the role lacks it)
  run: the program's exit code; 124 timed out, 125 could not be run, 130 cancelled`;

// The client's own codes that say registryd could not be asked or did not
// answer (src/errors.js).
const unreachableCodes = new Set(['not_connected', 'connection_lost', 'timeout']);

// Refused for who the caller is: a 401 at the upgrade (also when it shows as
// not_connected: it was the last connection error) or `forbidden`.
export function notPermitted(e) {
  const why = e.code === 'not_connected' ? e.cause : e;
  return why?.code === 'unauthorized' || why?.code === 'forbidden';
}

// The exit code for a RegistryError; `failed` is the command's code for a
// refusal (run: 125).
export function exitCodeOf(e, failed = exitCodes.failed) {
  if (notPermitted(e)) return exitCodes.noPermission;
  if (unreachableCodes.has(e.code)) return failed === exitCodes.failed ? exitCodes.unavailable : failed;
  return failed;
}

// The one line registryctl prints for a RegistryError.
export function describe(e) {
  if (e.code === 'unauthorized') return e.message;
  if (e.code === 'forbidden') return `not permitted: ${e.message}`;
  if (e.code === 'unknown_action') {
    return (
      `this registryd does not support '${e.action}' yet (${e.code}: ${e.message}); ` +
      'the command needs a daemon with that capability'
    );
  }
  if (e.code === 'not_connected') return `cannot reach registryd: ${e.message}`;
  return `${e.code}: ${e.message}`;
}
