import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { parseCatalog } from '../../lib/catalog';
import { buildFleet, Fleet, FleetOptions } from '../../lib/fleet';

export const REPO_ROOT = path.join(__dirname, '..', '..');

/** The same feature flags the CLI uses (cdk.json), so a test app behaves exactly like `cdk synth`. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
}

export function newApp(): App {
  return new App({ context: cdkJsonContext() });
}

export const SAMPLE_TENANTS = [
  {
    id: 'northwind',
    name: 'Northwind Health',
    model: 'silo',
    settings: { instanceClass: 'r6g.large', backupRetentionDays: 35, vpcCidr: '10.16.0.0/20' },
  },
  {
    id: 'initech-qa',
    name: 'Initech QA',
    model: 'silo',
    settings: { multiAz: false, backupRetentionDays: 7, deletionPolicy: 'destroy', vpcCidr: '10.17.0.0/20' },
  },
  { id: 'acme', name: 'Acme', model: 'pool' },
  { id: 'globex', name: 'Globex', model: 'pool' },
  { id: 'umbrella', name: 'Umbrella', model: 'bridge' },
  { id: 'hooli', name: 'Hooli', model: 'bridge', settings: { deletionPolicy: 'destroy' } },
];

export interface SynthesizedFleet {
  readonly app: App;
  readonly fleet: Fleet;
  template(stackName: string): Template;
  stackNames(): string[];
}

/** Builds and synthesizes a fleet (cdk-nag included: synth throws on any unacknowledged finding). */
export function synthFleet(
  tenants: unknown[] = SAMPLE_TENANTS,
  options: FleetOptions & { sharedCells?: unknown } = {},
): SynthesizedFleet {
  const app = newApp();
  const { sharedCells, ...fleetOptions } = options;
  const catalog = parseCatalog(
    sharedCells === undefined ? { tenants } : { tenants, sharedCells },
    'test catalog',
  );
  const fleet = buildFleet(app, catalog, { env: { region: 'us-east-1' }, ...fleetOptions });
  const assembly = app.synth();
  return {
    app,
    fleet,
    template: (name) => Template.fromJSON(assembly.getStackByName(name).template),
    stackNames: () => assembly.stacks.map((s) => s.stackName).sort(),
  };
}

/** Replaces content hashes (assets, bundles, images) so snapshots change only when the infrastructure does. */
export function normalizeTemplate(template: unknown): unknown {
  const text = JSON.stringify(template)
    .replace(/[0-9a-f]{64}(\.zip)?/g, '<asset-hash>$1')
    .replace(/"(cdk-[a-z0-9]+-[a-z-]+-)\$\{AWS::AccountId\}/g, '"$1<account>');
  return JSON.parse(text);
}
