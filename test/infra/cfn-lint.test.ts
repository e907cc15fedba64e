import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SAMPLE_TENANTS, synthFleet } from './fleet-helpers';

/**
 * AWS's CloudFormation linter over every template the fleet synthesizes (the sample catalog plus a silo from the
 * address pool, a disposable one and a restored one), on top of the schema validation CDK runs at synth.
 *
 * Every finding is fixed, except those acknowledged here, each with its reason. This is the one place they are.
 */
const ACKNOWLEDGED: { rule: string; resourceType: string; message: RegExp; reason: string }[] = [
  {
    rule: 'E3002',
    resourceType: 'AWS::ElasticLoadBalancingV2::Listener',
    message: /'Tags' was unexpected/,
    reason:
      "cfn-lint 1.51's bundled resource schema predates Tags on load balancer listeners; CloudFormation's current schema has them, and aws-cdk-lib validates every template against it at synth (validateAgainstDefaultRules).",
  },
  {
    rule: 'E3002',
    resourceType: 'AWS::ApplicationAutoScaling::ScalableTarget',
    message: /'Tags' was unexpected/,
    reason:
      "cfn-lint 1.51's bundled resource schema predates Tags on Application Auto Scaling scalable targets; CloudFormation's current schema has them, and aws-cdk-lib validates every template against it at synth (validateAgainstDefaultRules).",
  },
  {
    rule: 'W3005',
    resourceType: '*',
    message: /dependency already enforced by a '(Ref|GetAtt)'/,
    reason:
      "aws-cdk-lib's own constructs (ECS services, Lambda functions, state machines) state some dependencies both explicitly and through a Ref or GetAtt; CloudFormation treats the pair as one dependency, so deploy order and behaviour are unchanged.",
  },
];

interface Finding {
  Rule: { Id: string };
  Message: string;
  Filename: string;
  Location: { Path?: (string | number)[] };
}

describe('cfn-lint', () => {
  let findings: Finding[] = [];
  let typeOf: (f: Finding) => string = () => '';
  const acknowledges = (a: (typeof ACKNOWLEDGED)[number], f: Finding) =>
    a.rule === f.Rule.Id &&
    a.message.test(f.Message) &&
    (a.resourceType === '*' || a.resourceType === typeOf(f));

  beforeAll(() => {
    const fleet = synthFleet([
      ...SAMPLE_TENANTS,
      { id: 'ipam-silo', name: 'From the pool', model: 'silo' },
      {
        id: 'restored',
        name: 'Back',
        model: 'silo',
        settings: { vpcCidr: '10.18.0.0/20', restoredFromSnapshot: 'restored-final-20261127100000' },
      },
      { id: 'prod-silo', name: 'Production profile', model: 'silo', settings: { profile: 'production' } },
      {
        id: 'idle-silo',
        name: 'Idle-friendly profile',
        model: 'silo',
        settings: { profile: 'idle-friendly' },
      },
      {
        id: 'idle-back',
        name: 'Idle-friendly, restored',
        model: 'silo',
        settings: { profile: 'idle-friendly', restoredFromSnapshot: 'idle-back-final-20261127100000' },
      },
    ]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfn-lint-'));
    const files = fleet.stackNames().map((name) => {
      const file = path.join(dir, `${name}.template.json`);
      fs.writeFileSync(file, JSON.stringify(fleet.template(name).toJSON()));
      return file;
    });
    expect(files.length).toBeGreaterThanOrEqual(12);
    let output: string;
    try {
      output = execFileSync('cfn-lint', ['--format', 'json', ...files], {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
    } catch (e) {
      // cfn-lint exits non-zero when it finds anything; the findings are on stdout either way.
      output = (e as { stdout?: string }).stdout ?? '';
      if (!output) throw e;
    }
    findings = JSON.parse(output) as Finding[];
    typeOf = (f: Finding) => {
      const [, logicalId] = f.Location.Path ?? [];
      const t = fleet.template(path.basename(f.Filename, '.template.json')).toJSON() as {
        Resources: Record<string, { Type: string }>;
      };
      return t.Resources[logicalId as string]?.Type ?? '';
    };
  });

  test('finds nothing unacknowledged in any synthesized template', () => {
    const unacknowledged = findings.filter((f) => !ACKNOWLEDGED.some((a) => acknowledges(a, f)));
    expect(unacknowledged.map((f) => `${path.basename(f.Filename)} ${f.Rule.Id} ${f.Message}`)).toEqual([]);
  });

  test('every acknowledgement has a reason and still matches a finding (one that no longer does is removed)', () => {
    for (const a of ACKNOWLEDGED) {
      expect({
        rule: a.rule,
        reasoned: a.reason.length > 60,
        used: findings.some((f) => acknowledges(a, f)),
      }).toEqual({
        rule: a.rule,
        reasoned: true,
        used: true,
      });
    }
  });
});
