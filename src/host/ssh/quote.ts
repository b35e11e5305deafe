// POSIX shell quoting for every argument of every remote command: a remote command is one string
// that the user's login shell parses. The quoting is shell-quote's (a well-kept library); what we
// add is the refusal of what no quoting can carry (a NUL byte ends a C string) and of an empty
// command. test/unit/ssh-quote.test.ts checks the result against real shells, byte for byte.
// No vscode here: unit-tested in plain Node.
import { quote } from 'shell-quote';

function refuseNul(arg: string): void {
  if (arg.includes('\0')) throw new Error('A shell argument cannot contain a NUL byte.');
}

/** One argument, quoted so that any POSIX shell passes it through byte for byte. */
export function shQuote(arg: string): string {
  refuseNul(arg);
  return quote([arg]);
}

/** A command line from a program and its arguments, every one of them quoted. */
export function shCommand(args: readonly string[]): string {
  if (args.length === 0) throw new Error('An empty command.');
  args.forEach(refuseNul);
  return quote(args);
}

/**
 * `NAME='value' …` assignments to prefix a command with (the server may refuse SSH's env
 * requests, AcceptEnv being off by default; assignments in the command always work).
 */
export function shEnv(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        throw new Error(`Not an environment variable name: ${JSON.stringify(name)}`);
      return `${name}=${shQuote(value)}`;
    })
    .join(' ');
}
