/**
 *   npm run tenant -- export --tenant <id> --out <file> [--encrypt]
 *   npm run tenant -- restore --from <file> --tenant <id> [--as <new id>] [--model <model>] [--force] [--name <name>]
 *   npm run tenant -- move --tenant <id> --to <model>
 *   npm run tenant -- purge --tenant <id>
 *   npm run tenant -- abort-move --tenant <id>
 *   npm run tenant -- inspect --from <file>
 *   npm run tenant -- export --aws --tenant <id>
 *   npm run tenant -- restore --aws --tenant <id> --from tenants/<id>/<archive>.tfa
 *
 * One tenant's data on the local platform: export to a signed archive, restore it (same tenant, new id, another
 * model), move it to another model with its writes frozen meanwhile (service/src/local/mobility.ts, db/mobility/).
 * Works whether or not `npm run local` is running; a running API sees the move through the registry.
 * With --aws, export and restore run in a deployed fleet, through the mobility runner beside the tenant's cell
 * (scripts/tenant-aws.ts).
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { ISOLATION_MODELS, IsolationModel } from '../contracts';
import { ArchiveError, verifyArchive } from '../db/mobility';
import { TenantIdError } from '../db/naming';
import { openLocalPlatform } from '../service/src/local/admin';
import { MobilityError, TenantMobility } from '../service/src/local/mobility';
import { LOCAL_DIR } from '../service/src/local/platform';
import { localPgPort } from '../service/src/local/instance';
import { awsErrorMessage, parseCli } from './cli';
import { AwsMobilityError, runAwsMobility } from './tenant-aws';

const USAGE = `usage: npm run tenant -- <command> [options]

One tenant's data on the local platform.
  export --tenant <id> --out <file> [--encrypt]
      exactly this tenant's rows, read by its own runtime principal in one snapshot, to a signed archive
      (gzip; --encrypt: AES-256-GCM with this installation's key)
  restore --from <file> --tenant <id> [--as <new id>] [--model <model>] [--force] [--name <name>]
      an archive of tenant <id> into <id> (active: only with --force, which exports what it has first),
      into a new tenant (--as), or into another model (--model); all or nothing
  move --tenant <id> --to <silo|pool|bridge>
      its writes frozen (the API answers it 503 with Retry-After), its data copied and verified, the registry
      switched; on any failure it stays where it was. The old copy is kept until purge
  purge --tenant <id>         removes the copy its last move kept
  abort-move --tenant <id>    after an interrupted move or restore --force: back where it was, serving again;
                              after an interrupted restore into a new id: what it created is removed
  inspect --from <file>       verifies an archive and prints its manifest

In a deployed fleet (AWS credentials and Region from the environment):
  export --aws --tenant <id>
      the same export, by the mobility runner beside the tenant's cell, to the cell's archive bucket
      (encrypted with the cell's key, a silo's with its own); prints the archive's key. A tenant larger
      than the runner's function finishes goes to the cell's runner task: the command waits for it
  restore --aws --tenant <id> --from tenants/<id>/<archive>.tfa
      that archive back into its own tenant, while the tenant has no rows (lost, or deleted on purpose)
  --help                      this text`;

type Flags = Record<string, string | boolean | undefined>;

async function main(): Promise<number> {
  const [command, ...argv] = process.argv.slice(2);
  const commands = ['export', 'restore', 'move', 'purge', 'abort-move', 'inspect'];
  if (command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (!commands.includes(command)) {
    console.error(
      `tenant: ${command ? `unknown command "${command}"` : 'a command is required'}\n\n${USAGE}`,
    );
    return 2;
  }
  const { values } = parseCli(
    `tenant ${command}`,
    USAGE,
    {
      tenant: { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      as: { type: 'string' },
      model: { type: 'string' },
      to: { type: 'string' },
      name: { type: 'string' },
      encrypt: { type: 'boolean' },
      force: { type: 'boolean' },
      aws: { type: 'boolean' },
    },
    { argv },
  );
  const flags = values as Flags;
  const required: Record<string, string[]> = {
    export: ['tenant', 'out'],
    restore: ['from', 'tenant'],
    move: ['tenant', 'to'],
    purge: ['tenant'],
    'abort-move': ['tenant'],
    inspect: ['from'],
  };
  const missing = (flags.aws && command === 'export' ? ['tenant'] : required[command]).filter(
    (f) => flags[f] === undefined,
  );
  if (missing.length > 0) {
    console.error(`tenant ${command}: ${missing.map((f) => `--${f}`).join(' and ')} required\n\n${USAGE}`);
    return 2;
  }
  for (const f of ['model', 'to'] as const) {
    const v = flags[f];
    if (v !== undefined && !ISOLATION_MODELS.includes(v as IsolationModel)) {
      console.error(`tenant ${command}: --${f} must be silo, pool or bridge (got "${v}")`);
      return 2;
    }
  }
  if (flags.aws) return aws(command, flags);
  const platform = await openLocalPlatform({
    dir: LOCAL_DIR,
    pgPort: localPgPort(LOCAL_DIR),
  });
  const mobility = new TenantMobility(platform);
  const str = (f: string) => flags[f] as string;
  const started = Date.now();
  try {
    switch (command) {
      case 'export': {
        const m = await mobility.export(str('tenant'), str('out'), { encrypt: Boolean(flags.encrypt) });
        console.log(
          `exported ${m.model} tenant "${m.tenantId}" at schema version ${m.schemaVersion} to ${str('out')}${m.encrypted ? ' (encrypted)' : ''}: ${rows(m.rows)} in ${seconds(started)}`,
        );
        break;
      }
      case 'restore': {
        const r = await mobility.restore(str('from'), {
          tenantId: str('tenant'),
          as: flags.as as string | undefined,
          model: flags.model as IsolationModel | undefined,
          force: Boolean(flags.force),
          name: flags.name as string | undefined,
        });
        console.log(
          `restored ${rows(r.manifest.rows)} of "${r.manifest.tenantId}" into ${r.created ? 'new ' : ''}${r.model} tenant "${r.tenantId}" at schema version ${r.schemaVersion}` +
            (r.manifest.schemaVersion < r.schemaVersion
              ? ` (migrated forward from ${r.manifest.schemaVersion})`
              : '') +
            ` in ${seconds(started)}` +
            (r.safetyFile ? `; what it had before is in ${r.safetyFile}` : ''),
        );
        break;
      }
      case 'move': {
        const r = await mobility.move(str('tenant'), str('to') as IsolationModel);
        console.log(
          `moved tenant "${r.tenantId}" from ${r.from} to ${r.to}: ${rows(r.rows)}, ${(r.bytes / 1e6).toFixed(1)} MB archived, writes frozen ${(r.frozenMs / 1000).toFixed(1)} s, ${(r.totalMs / 1000).toFixed(1)} s in all (${Object.entries(
            r.phasesMs,
          )
            .map(([p, ms]) => `${p} ${(ms / 1000).toFixed(1)} s`)
            .join(', ')}). The ${r.from} copy is kept until: npm run tenant -- purge --tenant ${r.tenantId}`,
        );
        break;
      }
      case 'purge':
        console.log(await mobility.purge(str('tenant')));
        break;
      case 'abort-move':
        console.log(await mobility.abortMove(str('tenant')));
        break;
      case 'inspect':
        console.log(
          `${str('from')}: verified (complete, unaltered, signed by this installation); its manifest:\n` +
            JSON.stringify(await verifyArchive(str('from'), platform.archiveKey), null, 2),
        );
        break;
    }
    return 0;
  } catch (e) {
    const known = e instanceof MobilityError || e instanceof ArchiveError || e instanceof TenantIdError;
    console.error(known ? (e as Error).message : `tenant ${command}: ${(e as Error).stack}`);
    return 1;
  } finally {
    await platform.stop();
  }
}

/** export --aws and restore --aws (scripts/tenant-aws.ts). */
async function aws(command: string, flags: Flags): Promise<number> {
  const unsupported = ['out', 'encrypt', 'model', 'force', 'name', 'as'].filter(
    (f) => flags[f] !== undefined,
  );
  if ((command !== 'export' && command !== 'restore') || unsupported.length > 0) {
    // In AWS these are an approver's requests to the onboarding entry, not an operator's invoke.
    const instead =
      command === 'restore' && flags.force !== undefined
        ? `: restore over a tenant's data in AWS is an approver's request: npm run request -- restore --tenant ${String(flags.tenant ?? '<id>')} --from <archive key>`
        : command === 'restore' && flags.as !== undefined
          ? `: a new tenant from an archive in AWS is an approver's request: npm run request -- onboard --tenant ${String(flags.as)} --model ${String(flags.model ?? '<pool|bridge>')} --admin-email <email> --restore-from ${String(flags.from ?? '<archive key>')}${flags.model !== undefined ? ` --restore-from-model <tenant ${String(flags.tenant ?? '<id>')}'s model, pool or bridge>` : ''}`
          : '';
    console.error(
      `tenant ${command} --aws: ${command !== 'export' && command !== 'restore' ? `${command} runs on the local platform only for now` : `${unsupported.map((f) => `--${f}`).join(', ')} cannot be used with --aws${instead}`}\n\n${USAGE}`,
    );
    return 2;
  }
  const started = Date.now();
  try {
    const r = await runAwsMobility(
      command,
      {
        tenant: flags.tenant as string,
        from: flags.from as string | undefined,
      },
      // One attempt: a retried invoke would run a second export (or restore) beside the first.
      { cfn: new CloudFormationClient({}), lambda: new LambdaClient({ maxAttempts: 1 }) },
    );
    console.log(
      command === 'export'
        ? `exported ${r.model} tenant "${r.tenantId}" at schema version ${r.schemaVersion}: ${rows(r.rows)}, ${r.bytes} bytes, to s3://${r.bucket}/${r.archive} in ${seconds(started)}\nrestore it (into this tenant, while it has no rows) with: npm run tenant -- restore --aws --tenant ${r.tenantId} --from ${r.archive}`
        : `restored ${rows(r.rows)} of "${r.archiveTenantId}" from s3://${r.bucket}/${r.archive} into ${r.model} tenant "${r.tenantId}" at schema version ${r.schemaVersion} in ${seconds(started)}`,
    );
    return 0;
  } catch (e) {
    const known = e instanceof AwsMobilityError || e instanceof TenantIdError;
    // AWS's own errors (credentials, Region, throttling) are shown as AWS gave them, without our stack.
    console.error(known ? (e as Error).message : `tenant ${command} --aws: ${awsErrorMessage(e)}`);
    return 1;
  }
}

const rows = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([t, n]) => `${n.toLocaleString('en-US')} ${t}`)
    .join(', ');
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

main().then((code) => process.exit(code));
