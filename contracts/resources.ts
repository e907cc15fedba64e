/** The custom resource types the stacks declare and the provisioner handler serves. */
export const PROVISIONER_RESOURCE_TYPES = {
  /** Roles, bookkeeping and PUBLIC revoked, once per database; pool: the shared tables too. */
  bootstrap: 'Custom::DatabaseBootstrap',
  silo: 'Custom::SiloTenant',
  pool: 'Custom::PoolTenant',
  bridge: 'Custom::BridgeTenant',
} as const;
