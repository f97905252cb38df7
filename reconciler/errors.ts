// Three kinds of trouble, each with a phase and a cause (Flux's named phases):
// - Stalled: the desired state is invalid; a human must change git. Never retried.
// - Waiting: a dependency is not ready yet; retried later.
// - Transient: host or network trouble; retried with backoff.

export type Phase = 'ValidationFailed' | 'BuildFailed' | 'ApplyFailed' | 'HealthCheckFailed' | 'PruneFailed';

abstract class ReconcileError extends Error {
  abstract readonly kind: 'stalled' | 'waiting' | 'transient';
  constructor(readonly phase: Phase, readonly resource: string, message: string, options?: { cause?: unknown }) {
    super(`${phase}: ${resource}: ${message}`, options);
  }
}

export class StalledError extends ReconcileError {
  readonly kind = 'stalled';
  override name = 'StalledError';
}

export class WaitingError extends ReconcileError {
  readonly kind = 'waiting';
  override name = 'WaitingError';
}

export class TransientError extends ReconcileError {
  readonly kind = 'transient';
  override name = 'TransientError';
}

/** Error type names that Temporal must not retry (ApplicationFailure types). */
export const NON_RETRYABLE = ['StalledError'];
