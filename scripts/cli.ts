/**
 * The command-line rules every script here follows: `--help` (or `-h`) prints the usage and exits 0; an unknown
 * flag, a flag without its value or a stray argument prints what was wrong and the usage, and exits 2, before
 * anything runs.
 */
import { parseArgs, type ParseArgsConfig } from 'util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseCli<O extends Options>(
  command: string,
  usage: string,
  options: O,
  { positionals: allowed = 0, argv = process.argv.slice(2) }: { positionals?: number; argv?: string[] } = {},
): { values: { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string }; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    return usageError(command, usage, (e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  if ((parsed.values as Record<string, unknown>).help) {
    console.log(usage);
    process.exit(0);
  }
  if (parsed.positionals.length > allowed) {
    return usageError(command, usage, `unexpected argument "${parsed.positionals[allowed]}"`);
  }
  return parsed as never;
}

function usageError(command: string, usage: string, problem: string): never {
  console.error(`${command}: ${problem}\n\n${usage}`);
  process.exit(2);
}

/**
 * An AWS SDK error's message for a user, with what to set when the SDK found no Region or no credentials (the
 * commands that reach AWS say this rather than the SDK's bare sentence).
 */
export function awsErrorMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  if (/Region is missing|Region not accepted/i.test(m)) {
    return `${m}: set AWS_REGION (or AWS_PROFILE, with a profile that names a region)`;
  }
  if (/Could not load credentials|Unable to locate credentials|credentials? (is|are) missing/i.test(m)) {
    return `${m}: configure AWS credentials for the fleet's account (aws configure, AWS_PROFILE or the AWS_* environment variables)`;
  }
  return m;
}
