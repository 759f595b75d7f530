// A command line that cannot be run as given: registryctl prints the message
// and the usage, and exits 2.
export class UsageError extends Error {}

export function usageError(message) {
  return new UsageError(message);
}
