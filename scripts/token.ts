/**
 * npm run -s token -- <tenantId> [--user <name>]
 *
 * Prints a signed ID token for the tenant from the local issuer, and nothing else, so
 *   curl -H "Authorization: Bearer $(npm run -s token -- acme)" localhost:3000/invoices
 * works. The tenant id is checked with the catalog's rules.
 */
import * as path from 'path';
import { tenantIdProblem } from '../db/naming';
import { LocalIssuer } from '../service/src/local/issuer';

const args = process.argv.slice(2);
const tenantId = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--user');
const user = args.includes('--user') ? args[args.indexOf('--user') + 1] : undefined;
if (!tenantId) {
  console.error('usage: npm run -s token -- <tenantId> [--user <name>]');
  process.exit(2);
}
const problem = tenantIdProblem(tenantId);
if (problem) {
  console.error(`token: tenant id ${problem}`);
  process.exit(2);
}
if (user !== undefined && !/^[A-Za-z0-9._@-]{1,128}$/.test(user)) {
  console.error(`token: --user ${JSON.stringify(user)} is invalid: use 1-128 letters, digits and . _ @ -`);
  process.exit(2);
}
const issuer = LocalIssuer.open(path.join(__dirname, '..', '.local', 'issuer'));
process.stdout.write(issuer.idToken({ tenantId, username: user }) + '\n');
