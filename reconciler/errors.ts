// How the reconciler treats trouble (Flux's named phases):
// - Stalled: the desired state is invalid; a human must change git. Never retried.
// - Failed on its own terms (HealthCheckFailed, BuildFailed): the new version is not
//   served, the old one keeps serving, and the next pass tries again.
// - Anything else is host or network trouble: retried with backoff by Temporal.

export type Phase = 'ValidationFailed' | 'BuildFailed' | 'ApplyFailed' | 'HealthCheckFailed' | 'PruneFailed';

export class StalledError extends Error {
  override name = 'StalledError';
  constructor(readonly phase: Phase, readonly resource: string, message: string, options?: { cause?: unknown }) {
    super(`${phase}: ${resource}: ${message}`, options);
  }
}

/**
 * Activity failure types Temporal must not retry within a pass (a changed host key needs a
 * human to re-pin it; a host failing its health checks is the next pass's to plan around).
 */
export const NON_RETRYABLE = ['StalledError', 'HealthCheckFailed', 'BuildFailed', 'HostKeyMismatchError', 'HostUnreachable'];
