/**
 * npm run -s token -- <tenantId> [--user <email>]
 *
 * Prints a signed ID token from the local issuer for a user of the tenant (its administrator unless --user
 * names another), and nothing else, so
 *   curl -H "Authorization: Bearer $(npm run -s token -- acme)" localhost:3000/invoices
 * works. As in AWS, only an enabled user of the tenant gets one: an offboarded tenant's users are disabled.
 */
import * as path from 'path';
import { parseCli } from './cli';
import { tenantIdProblem } from '../db/naming';
import { LocalIssuer } from '../service/src/local/issuer';
import { LOCAL_DIR } from '../service/src/local/platform';
import { LocalUserError, LocalUsers } from '../service/src/local/users';

const USAGE = `usage: npm run -s token -- <tenant id> [--user <email>]

Prints an ID token from the local issuer for a user of the tenant (its administrator unless --user names another).
  --user <email>   sign in as this user of the tenant
  --help           this text`;
const { values, positionals } = parseCli('token', USAGE, { user: { type: 'string' } }, { positionals: 1 });
const tenantId = positionals[0];
const user = values.user;
if (!tenantId) {
  console.error(`token: which tenant? give its id\n\n${USAGE}`);
  process.exit(2);
}
const problem = tenantIdProblem(tenantId);
if (problem) {
  console.error(`token: tenant id ${problem}`);
  process.exit(2);
}
if (user !== undefined && !/^[A-Za-z0-9._@+-]{1,254}$/.test(user)) {
  console.error(`token: --user ${JSON.stringify(user)} is invalid: give the user's email address`);
  process.exit(2);
}
const dir = path.join(LOCAL_DIR, 'issuer');
let signedIn;
try {
  signedIn = LocalUsers.open(dir).signInAs(tenantId, user);
} catch (e) {
  if (!(e instanceof LocalUserError)) throw e;
  console.error(`token: ${e.message}`);
  process.exit(1);
}
process.stdout.write(LocalIssuer.open(dir).idToken({ tenantId, username: signedIn.email }) + '\n');
