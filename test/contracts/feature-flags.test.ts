import * as fs from 'fs';
import * as path from 'path';
import { CURRENT_VERSION_EXPIRED_FLAGS, FLAGS } from 'aws-cdk-lib/cx-api';

// The app states its choice for every feature flag of the aws-cdk-lib it pins (cdk.json), so `cdk synth` warns
// of none and an upgrade that brings new flags fails here until someone decides them.
test('cdk.json configures every current feature flag of the installed aws-cdk-lib', () => {
  const context = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'cdk.json'), 'utf8')).context;
  const expired = new Set(CURRENT_VERSION_EXPIRED_FLAGS);
  const unset = Object.keys(FLAGS).filter((flag) => !expired.has(flag) && !(flag in context));
  expect(unset).toEqual([]);
});
