// POSIX shell quoting for every argument of every remote command. A remote command is one string
// that the user's login shell parses; single quotes are the only quoting in which nothing
// (no $, `, \, newline) is special, so each argument becomes '…' with an embedded ' written as '\''.
// No vscode here: unit-tested in plain Node.

/** One argument, quoted so that any POSIX shell passes it through byte for byte. */
export function shQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('A shell argument cannot contain a NUL byte.');
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line from a program and its arguments, every one of them quoted. */
export function shCommand(args: readonly string[]): string {
  if (args.length === 0) throw new Error('An empty command.');
  return args.map(shQuote).join(' ');
}

/**
 * `NAME='value' …` assignments to prefix a command with (the server may refuse SSH's env
 * requests, AcceptEnv being off by default; assignments in the command always work).
 */
export function shEnv(env: Readonly<Record<string, string>>): string {
  return Object.entries(env)
    .map(([name, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`Not an environment variable name: ${JSON.stringify(name)}`);
      return `${name}=${shQuote(value)}`;
    })
    .join(' ');
}
