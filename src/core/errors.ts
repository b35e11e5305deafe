// Errors a user can act on: the CLI prints their message alone (no stack) and exits with code 2.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
