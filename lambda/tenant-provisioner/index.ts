import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

/**
 * Custom-resource handler for tenant provisioning. The database logic is not built yet: until it is, every
 * request fails loudly so that no stack ever reports a tenant as provisioned when nothing was created.
 */
export async function handler(event: CloudFormationCustomResourceEvent): Promise<never> {
  throw new Error(
    `tenant provisioner: ${event.RequestType} of ${event.ResourceType} is not implemented yet; no database objects were created`,
  );
}
