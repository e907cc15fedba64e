/**
 * The custom resource types the stacks declare and the provisioner handler serves: the one contract between
 * lib/ and lambda/tenant-provisioner. Pure (no aws-cdk-lib), so the handler bundle can import it.
 */
export const PROVISIONER_RESOURCE_TYPES = {
  /** Roles, bookkeeping and PUBLIC revoked, once per database; pool: the shared tables too. */
  bootstrap: 'Custom::DatabaseBootstrap',
  silo: 'Custom::SiloTenant',
  pool: 'Custom::PoolTenant',
  bridge: 'Custom::BridgeTenant',
} as const;
