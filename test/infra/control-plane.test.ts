import { App, Stack } from 'aws-cdk-lib';
import { registryStatements } from '../../lib/constructs/registry-access';
import { synthFleet } from './fleet-helpers';

// Per-tenant scopes on shared resources, as deployed: the registry, the tenant keys and sign-in.
const fleet = synthFleet();
type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = {
  Sid?: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
};
const resourcesOf = (stack: string) => fleet.template(stack).toJSON().Resources as Record<string, Resource>;
const statementsOf = (stack: string, rolePart: string): Statement[] =>
  Object.values(resourcesOf(stack))
    .filter((r) => r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy')
    .filter((r) => JSON.stringify(r.Properties.Roles ?? '').includes(rolePart))
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const registryItems = (stack: string, rolePart: string) =>
  statementsOf(stack, rolePart).filter((s) => JSON.stringify(s.Action).includes('dynamodb:'));

describe('the tenant registry, per tenant', () => {
  test("a silo's API reads only its own tenant's item; its provisioner writes only that item", () => {
    const api = registryItems('Tenant-northwind', 'ApiTaskTaskRole');
    expect(api).toEqual([
      expect.objectContaining({
        Action: 'dynamodb:GetItem',
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['northwind'] } },
      }),
    ]);
    const provisioner = registryItems('Tenant-northwind', 'Provisioner');
    expect(provisioner).toEqual([
      expect.objectContaining({
        Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['northwind'] } },
      }),
    ]);
  });

  test('the shared APIs read, never write', () => {
    for (const cell of ['Pool', 'Bridge']) {
      const api = statementsOf(cell, 'ApiTaskTaskRole');
      const actions = api.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
      expect(actions.filter((a) => /^kms:(Encrypt|GenerateDataKey|ReEncrypt)/.test(a))).toEqual([]);
    }
  });

  test('a per-tenant grant that cannot be limited to one item (Scan, Query) is refused at synth', () => {
    const stack = new Stack(new App(), 'S');
    expect(() =>
      registryStatements(
        stack,
        { tableName: 't', tableArn: 'arn', keyArn: 'k' },
        {
          sid: 'X',
          actions: ['dynamodb:GetItem', 'dynamodb:Scan'],
          writes: false,
          tenantId: 'acme',
        },
      ),
    ).toThrow('registry grant X for tenant "acme": dynamodb:Scan cannot be limited to one tenant\'s item');
  });
});

describe("a tenant's key", () => {
  test("CloudWatch Logs may use it only for its own stack's log groups, and every log group it encrypts is one", () => {
    for (const stack of fleet.stackNames()) {
      const resources = resourcesOf(stack);
      const keys = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::KMS::Key');
      for (const [, key] of keys) {
        const logs = (key.Properties.KeyPolicy as { Statement: Statement[] }).Statement.find((s) =>
          JSON.stringify(s).includes('logs.us-east-1.amazonaws.com'),
        )!;
        const arns = JSON.stringify(logs.Condition);
        expect(arns).toContain(`log-group:/tenantforge/${stack}/*`);
        expect(arns).toContain(`log-group:aws-waf-logs-tenantforge/${stack}/*`);
        expect(arns).not.toMatch(/log-group:\*/);
      }
      for (const [id, group] of Object.entries(resources).filter(
        ([, r]) => r.Type === 'AWS::Logs::LogGroup',
      )) {
        if (!group.Properties.KmsKeyId) continue;
        // The name's literal start (the rest is the stack's incarnation, from its id).
        const name = group.Properties.LogGroupName as string | { 'Fn::Join': [string, unknown[]] };
        const literal = typeof name === 'string' ? name : String(name['Fn::Join'][1][0]);
        expect({ id, name: JSON.stringify(literal) }).toEqual({
          id,
          name: expect.stringMatching(new RegExp(`^"(/tenantforge|aws-waf-logs-tenantforge)/${stack}/`)),
        });
      }
    }
  });
});

describe('sign-in', () => {
  test('the app client has only the flows the API uses: SRP sign-in and refresh, no OAuth', () => {
    const clients = Object.values(resourcesOf('Platform')).filter(
      (r) => r.Type === 'AWS::Cognito::UserPoolClient',
    );
    expect(clients).toHaveLength(1);
    const p = clients[0].Properties;
    expect(p.ExplicitAuthFlows).toEqual(['ALLOW_USER_SRP_AUTH', 'ALLOW_REFRESH_TOKEN_AUTH']);
    expect(p.AllowedOAuthFlowsUserPoolClient).toBe(false);
    for (const absent of ['AllowedOAuthFlows', 'AllowedOAuthScopes', 'CallbackURLs', 'LogoutURLs'])
      expect(p[absent]).toBeUndefined();
    expect(p.WriteAttributes).toEqual(['name']);
  });
});
