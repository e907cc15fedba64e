/**
 *   npm run onboard -- --tenant <id> --model <silo|pool|bridge> [--name <name>] [--settings '<json>']
 *                      [--admin-email <email>] [--restore]
 *   npm run offboard -- --tenant <id>
 *
 * Onboards or offboards one tenant on the local platform (see service/src/local/admin.ts). Works whether or not
 * `npm run local` is running; a running API serves the new tenant within seconds.
 */
import { AdminError, offboard, onboard, openLocalPlatform } from '../service/src/local/admin';
import { LOCAL_DIR } from '../service/src/local/platform';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<number> {
  const [command, ...args] = process.argv.slice(2);
  const tenantId = flag(args, 'tenant');
  if ((command !== 'onboard' && command !== 'offboard') || !tenantId) {
    console.error(
      'usage: npm run onboard -- --tenant <id> --model <silo|pool|bridge> [--name <name>] [--settings <json>] [--admin-email <email>] [--restore]\n' +
        '       npm run offboard -- --tenant <id>',
    );
    return 2;
  }
  let settings: Record<string, unknown> | undefined;
  const rawSettings = flag(args, 'settings');
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
    pgPort: Number(process.env.LOCAL_PG_PORT ?? '54329'),
  });
  try {
    const message =
      command === 'onboard'
        ? await onboard(platform, {
            tenantId,
            model: flag(args, 'model') ?? '',
            name: flag(args, 'name'),
            settings,
            ...(flag(args, 'admin-email') !== undefined ? { adminEmail: flag(args, 'admin-email') } : {}),
            ...(args.includes('--restore') ? { restore: true } : {}),
          })
        : await offboard(platform, tenantId);
    console.log(message);
    return 0;
  } catch (e) {
    console.error(e instanceof AdminError ? e.message : e);
    return 1;
  } finally {
    await platform.stop();
  }
}

main().then((code) => process.exit(code));
