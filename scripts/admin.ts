/**
 *   npm run onboard -- --tenant <id> --model <silo|pool|bridge> [--name <name>] [--settings '<json>']
 *                      [--admin-email <email>] [--restore]
 *   npm run offboard -- --tenant <id>
 *
 * Onboards or offboards one tenant on the local platform (see service/src/local/admin.ts). Works whether or not
 * `npm run local` is running; a running API serves the new tenant within seconds.
 */
import { parseCli } from './cli';
import { AdminError, offboard, onboard, openLocalPlatform } from '../service/src/local/admin';
import { LOCAL_DIR } from '../service/src/local/platform';
import { localPgPort } from '../service/src/local/instance';

const USAGE = {
  onboard: `usage: npm run onboard -- --tenant <id> --model <silo|pool|bridge> [--name <name>] [--settings <json>]
                         [--admin-email <email>] [--restore]

Onboards one tenant on the local platform, with the pipeline's rules.
  --tenant <id>          the tenant id (lowercase letters, digits and hyphens)
  --model <model>        silo, pool or bridge
  --name <name>          its display name (default: the id)
  --settings <json>      the catalog's tenant settings, e.g. '{"deletionPolicy":"destroy"}'
  --admin-email <email>  its first administrator (default: admin@<id>.example)
  --restore              bring back an offboarded tenant with its retained data
  --help                 this text`,
  offboard: `usage: npm run offboard -- --tenant <id>

Offboards one tenant on the local platform (its data kept or destroyed as its deletion policy says).
  --tenant <id>  the tenant id
  --help         this text`,
};

async function main(): Promise<number> {
  const [command, ...argv] = process.argv.slice(2);
  if (command !== 'onboard' && command !== 'offboard') {
    console.error(`${USAGE.onboard}\n\n${USAGE.offboard}`);
    return 2;
  }
  const { values } = parseCli(
    command,
    USAGE[command],
    command === 'onboard'
      ? {
          tenant: { type: 'string' },
          model: { type: 'string' },
          name: { type: 'string' },
          settings: { type: 'string' },
          'admin-email': { type: 'string' },
          restore: { type: 'boolean' },
        }
      : { tenant: { type: 'string' } },
    { argv },
  );
  const flag = (name: string) => (values as Record<string, string | undefined>)[name];
  const tenantId = flag('tenant');
  if (!tenantId) {
    console.error(`${command}: --tenant <id> is required\n\n${USAGE[command]}`);
    return 2;
  }
  if (command === 'onboard' && !flag('model')) {
    console.error(`onboard: --model <silo|pool|bridge> is required\n\n${USAGE[command]}`);
    return 2;
  }
  let settings: Record<string, unknown> | undefined;
  const rawSettings = flag('settings');
  if (rawSettings !== undefined) {
    try {
      settings = JSON.parse(rawSettings);
    } catch (e) {
      console.error(
        `onboard request: --settings is not JSON (${(e as Error).message}): e.g. '{"deletionPolicy":"destroy"}'`,
      );
      return 2;
    }
  }
  const platform = await openLocalPlatform({
    dir: LOCAL_DIR,
    pgPort: localPgPort(LOCAL_DIR),
  });
  try {
    const message =
      command === 'onboard'
        ? await onboard(platform, {
            tenantId,
            model: flag('model')!,
            name: flag('name'),
            settings,
            ...(flag('admin-email') !== undefined ? { adminEmail: flag('admin-email') } : {}),
            ...(values.restore ? { restore: true } : {}),
          })
        : await offboard(platform, tenantId);
    console.log(message);
    return 0;
  } catch (e) {
    // A refusal says what to do; anything else, its message (no stack for what the user can act on).
    console.error(
      e instanceof AdminError ? e.message : e instanceof Error ? `npm run ${command}: ${e.message}` : e,
    );
    return 1;
  } finally {
    await platform.stop();
  }
}

main().then((code) => process.exit(code));
