/**
 * The cell's fleet runner: a function of its own (same code, role and database as the custom-resource handler)
 * that accepts only fleet events (fleet.ts), so operators who run `npm run migrate -- --aws` hold invoke on this
 * function and never on the handler CloudFormation calls.
 */
import { connect } from './connection';
import { FleetEvent, FleetReport, isFleetEvent, runFleetEvent } from './fleet';
import { log } from './index';
import { recordSchemaVersion } from './registry';
import { ProvisioningInputError, readEnv } from './request';

export async function handler(event: FleetEvent): Promise<FleetReport> {
  const env = readEnv();
  if (!isFleetEvent(event)) {
    throw new ProvisioningInputError(
      'the fleet runner accepts only fleet events ({ "action": "plan-fleet" | "migrate-fleet", ... })',
    );
  }
  log('fleet event', { ...event });
  return runFleetEvent(event, env, {
    connect: () => connect(env, log),
    recordVersion: (tenantId, version) => recordSchemaVersion(env, tenantId, version),
    log,
  });
}
