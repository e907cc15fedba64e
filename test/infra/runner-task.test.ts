import * as fs from 'fs';
import * as path from 'path';
import { readEnv } from '../../lambda/tenant-provisioner/request';
import { runnerTaskFromEnv } from '../../lambda/tenant-provisioner/runner-task';
import { SAMPLE_TENANTS, synthFleet } from './fleet-helpers';

// The runner task as the templates define it, against what its code and image expect: the settings its code
// checks at start, and the directory it writes archives to.
const fleet = synthFleet(SAMPLE_TENANTS);
const DOCKERFILE = fs.readFileSync(
  path.join(__dirname, '..', '..', 'lambda', 'tenant-provisioner', 'Dockerfile'),
  'utf8',
);

type Container = {
  Name: string;
  User?: string;
  Environment: { Name: string; Value: unknown }[];
  MountPoints?: { ContainerPath: string; SourceVolume: string; ReadOnly: boolean }[];
};

function runnerContainer(stack: string): Container {
  const resources = fleet.template(stack).toJSON().Resources as Record<
    string,
    { Type: string; Properties: { ContainerDefinitions?: Container[] } }
  >;
  const [task] = Object.entries(resources).filter(
    ([id, r]) => r.Type === 'AWS::ECS::TaskDefinition' && id.includes('MobilityTask'),
  );
  return task[1].Properties.ContainerDefinitions![0];
}

describe.each(['Pool', 'Bridge', 'Tenant-northwind'])('%s: the runner task', (stack) => {
  const container = runnerContainer(stack);
  const env = Object.fromEntries(
    container.Environment.map((e) => [e.Name, typeof e.Value === 'string' ? e.Value : 'resolved-at-deploy']),
  );

  test('starts: its environment passes the checks its code makes before any work', () => {
    const saved = { ...process.env };
    try {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, env);
      const e = readEnv();
      // Statements may run nearly as long as a data step (4 hours), not a function's 15 minutes.
      expect(e.statementTimeoutMs).toBeGreaterThan(15 * 60 * 1000);
      expect(e.statementTimeoutMs).toBeLessThan(4 * 3600 * 1000);
      // It never hands its work on to another task.
      expect(env.RUNNER_IN_TASK).toBe('true');
      expect(runnerTaskFromEnv()).toBeUndefined();
      // The image's own CA bundle (the function's names Lambda's).
      expect(env.NODE_EXTRA_CA_CERTS).toBeUndefined();
    } finally {
      for (const k of Object.keys(process.env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  test("writes archives on its storage, mounted where the image's user may write (the image's VOLUME)", () => {
    const volume = /^VOLUME \["([^"]+)"\]$/m.exec(DOCKERFILE)?.[1];
    expect(volume).toBe('/work');
    expect(DOCKERFILE).toMatch(/^COPY --from=build --chown=1000:1000 \/work \/work$/m);
    expect(DOCKERFILE).toMatch(/^USER 1000$/m);
    expect(container.User).toBe('1000');
    expect(container.MountPoints).toEqual([{ ContainerPath: volume, SourceVolume: 'work', ReadOnly: false }]);
    expect(env.MOBILITY_WORK_DIR.startsWith(`${volume}/`)).toBe(true);
    // Its code is the image's entry point: a start's overrides cannot swap the command it runs.
    expect(DOCKERFILE).toMatch(/^ENTRYPOINT \["node", "\/app\/task-main\.js"\]$/m);
  });
});
