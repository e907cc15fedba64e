import { Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CatalogError } from '../../lib/catalog';
import { TenantProvisioning } from '../../lib/constructs/tenant-provisioning';
import { newApp } from './fleet-helpers';

describe('TenantProvisioning', () => {
  test('turns a single onboarding request into a tenant stack, as a pipeline does', () => {
    const app = newApp();
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    const stack = new Stack(app, 'Tenant-initrode', { env: { region: 'us-east-1' } });
    const tenant = TenantProvisioning.tenantFrom(
      { id: 'initrode', name: 'Initrode', model: 'bridge' },
      'request',
    );
    new TenantProvisioning(stack, 'Default', { tenant });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('Custom::BridgeTenant', {
      TenantId: 'initrode',
      Model: 'bridge',
      DeletionPolicy: 'retain',
    });
    t.resourceCountIs('Custom::BridgeTenant', 1);
  });

  test('refuses a request that breaks a catalog rule, with the same messages as the catalog', () => {
    expect(() =>
      TenantProvisioning.tenantFrom({ id: 'Bad Id', name: 'x', model: 'pool' }, 'onboarding request'),
    ).toThrow(CatalogError);
    expect(() =>
      TenantProvisioning.tenantFrom(
        { id: 'acme', name: 'Acme', model: 'pool', settings: { multiAz: true } },
        'onboarding request',
      ),
    ).toThrow(
      'onboarding request: the tenant catalog has 1 problem:\n  - tenant "acme": field "settings.multiAz" applies to silo tenants only',
    );
  });
});
