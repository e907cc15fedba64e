import { Stack } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { CfnResource } from 'aws-cdk-lib';
import { parseCatalog } from '../../lib/catalog';
import { buildFleet } from '../../lib/fleet';
import { newApp, SAMPLE_TENANTS } from './fleet-helpers';

function buildWith(extra: (stack: Stack) => void) {
  const app = newApp();
  const fleet = buildFleet(app, parseCatalog({ tenants: SAMPLE_TENANTS.slice(2, 3) }, 'test catalog'), {
    env: { region: 'us-east-1' },
  });
  extra(fleet.platform);
  return app;
}

describe('compliance gates', () => {
  test('the sample fleet synthesizes with zero unacknowledged cdk-nag findings (AwsSolutions, HIPAA, NIST 800-53 R5)', () => {
    const app = buildWith(() => undefined);
    expect(() => app.synth()).not.toThrow();
  });

  test('fails synth on an unacknowledged cdk-nag finding, naming the rule and the resource', () => {
    const app = buildWith((stack) => {
      new s3.Bucket(stack, 'Careless', { enforceSSL: false });
    });
    expect(() => app.synth()).toThrow(
      /ERROR The S3 Bucket or bucket policy does not require requests to use SSL\. \(AwsSolutions\)\s+Platform\/Careless\/Resource/,
    );
  });

  test('fails synth on a CloudFormation schema finding', () => {
    const app = buildWith((stack) => {
      new CfnResource(stack, 'Broken', {
        type: 'AWS::SSM::Parameter',
        properties: { Type: 'String', Valeu: 'x' },
      });
    });
    expect(() => app.synth()).toThrow(/Valeu/);
  });

  test('acknowledgements are attached to single resources, never to a whole stack', () => {
    const app = buildWith(() => undefined);
    app.synth();
    for (const stack of app.node.children.filter((c): c is Stack => c instanceof Stack)) {
      const onStack = stack.node.metadata.filter(
        (m) =>
          m.type === 'aws:cdk:acknowledged-rules' && /AwsSolutions|HIPAA|NIST/.test(JSON.stringify(m.data)),
      );
      expect(onStack).toEqual([]);
    }
    // Every acknowledgement names one rule and gives a reason a reviewer can read.
    const acks = app.node
      .findAll()
      .flatMap((c) => c.node.metadata.filter((m) => m.type === 'aws:cdk:acknowledged-rules'))
      .flatMap((m) => Object.entries(m.data as Record<string, string>))
      .filter(([id]) => /^(AwsSolutions|HIPAA|NIST)/.test(id));
    expect(acks.length).toBeGreaterThan(10);
    for (const [id, reason] of acks) {
      expect(id).toMatch(/^[A-Za-z.0-9]+::[A-Za-z.0-9]+-[A-Za-z0-9]+(\[.+\])?$/);
      expect({ id, reason, long: reason.length > 60 }).toEqual({ id, reason, long: true });
    }
  });
});
