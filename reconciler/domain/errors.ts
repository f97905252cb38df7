// Errors an agent can act on. Each has a code (what kind of problem) and a message that
// names the field or resource and says what to do next.
export type ErrorCode = 'invalid_input' | 'not_found' | 'already_exists' | 'conflict' | 'forbidden' | 'too_large';

export class DomainError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
    this.name = 'DomainError';
  }
}

export const invalid = (m: string): DomainError => new DomainError('invalid_input', m);
export const notFound = (m: string): DomainError => new DomainError('not_found', m);
export const conflict = (m: string): DomainError => new DomainError('conflict', m);
export const forbidden = (m: string): DomainError => new DomainError('forbidden', m);
