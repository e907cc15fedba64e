/**
 *   npm run fleet -- pull [--out <file>] [--table <registry table>]
 *
 * Writes the fleet as the tenant registry knows it (every active tenant, however it was onboarded) as a catalog
 * file, for `npx cdk deploy --all -c catalog=<file>`. Needs AWS credentials with read access to the registry
 * (and to the SSM parameter that names it, unless --table is given). Read-only.
 */
import * as fs from 'fs';
import { AttributeValue, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { RegistryItem, registryItemFromAttributes, ssmNames } from '../contracts';
import { CatalogError, loadCatalog } from '../lib/catalog';
import { fleetFromRegistry } from '../lib/fleet-source';
import { awsErrorMessage } from './cli';

const USAGE =
  'usage: npm run fleet -- pull [--out <file>] [--table <registry table name>] [--catalog <file whose sharedCells plans to keep; default tenants.json>]';

export async function readRegistry(table: string, client = new DynamoDBClient({})): Promise<RegistryItem[]> {
  const items: RegistryItem[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }),
    );
    for (const item of page.Items ?? []) items.push(registryItemFromAttributes(item)!);
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

export async function pull(args: string[], out: (line: string) => void): Promise<number> {
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0) return undefined;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value\n${USAGE}`);
    return v;
  };
  const file = flag('out') ?? 'fleet.json';
  const table =
    flag('table') ??
    (await new SSMClient({}).send(new GetParameterCommand({ Name: ssmNames.registryTableName }))).Parameter!
      .Value!;
  const items = await readRegistry(table);
  // The shared cells' plans (their sizes) come from the catalog the fleet is deployed from.
  const planFile = flag('catalog') ?? (fs.existsSync('tenants.json') ? 'tenants.json' : undefined);
  const { catalog, skipped } = fleetFromRegistry(
    items,
    planFile ? loadCatalog(planFile, '--catalog <path>').sharedCells : undefined,
  );
  fs.writeFileSync(file, JSON.stringify(catalog, null, 2) + '\n');
  out(
    `wrote ${catalog.tenants.length} tenant${catalog.tenants.length === 1 ? '' : 's'} to ${file} (registry ${table})`,
  );
  for (const s of skipped) out(`  skipped ${s.tenantId}: ${s.reason}`);
  out(`next: npx cdk deploy --all -c catalog=${file}`);
  return 0;
}

if (require.main === module) {
  const [command, ...args] = process.argv.slice(2);
  if (command === '--help' || command === '-h' || args.includes('--help')) {
    console.log(USAGE);
    process.exit(0);
  }
  if (command !== 'pull') {
    console.error(
      `npm run fleet: ${command === undefined ? 'name the command' : `unknown command "${command}"`}: the one command is pull\n\n${USAGE}`,
    );
    process.exit(2);
  }
  pull(args, (l) => console.log(l)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e instanceof CatalogError ? e.message : `fleet pull: ${awsErrorMessage(e)}`);
      process.exit(1);
    },
  );
}
