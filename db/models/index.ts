/**
 * The isolation models of the data plane, one module each, behind one interface (`DataModel`):
 *
 *   pool.ts    shared tables, tenant_id + Row-Level Security
 *   bridge.ts  one schema + one role per tenant on a shared server
 *   silo.ts    a database of the tenant's own
 */
import type { IsolationModel } from '../naming';
import { bridge } from './bridge';
import type { DataModel } from './model';
import { pool } from './pool';
import { silo } from './silo';

export type { DataModel, ModelOptions, ProvisionOptions, Provisioned, TenantRef } from './model';
export { migratePool, registerPoolTenant, offboardPoolTenant } from './pool';
export { provisionBridgeTenant, offboardBridgeTenant } from './bridge';
export { emptySilo, migrateSilo, offboardSilo } from './silo';

export const DATA_MODELS: Readonly<Record<IsolationModel, DataModel>> = { pool, bridge, silo };

export function dataModel(model: IsolationModel): DataModel {
  const impl = DATA_MODELS[model];
  if (!impl) throw new Error(`unknown isolation model ${JSON.stringify(model)}: use silo, pool or bridge`);
  return impl;
}
