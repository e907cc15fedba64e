import { normalizeTemplate, synthFleet } from './fleet-helpers';

// One snapshot per stack kind, for drift. The guarantees themselves are asserted property by property in
// isolation.test.ts; a snapshot change must be read and accepted by a person (`npx jest -u`), never by a script.
describe('template drift', () => {
  const fleet = synthFleet();
  test.each([
    ['platform', 'Platform'],
    ['pool cell', 'Pool'],
    ['bridge cell', 'Bridge'],
    ['silo tenant', 'Tenant-northwind'],
    ['pool tenant', 'Tenant-acme'],
    ['bridge tenant', 'Tenant-umbrella'],
    ['onboarding pipeline', 'Onboarding'],
  ])('%s stack matches its snapshot', (_kind, stackName) => {
    expect(normalizeTemplate(fleet.template(stackName).toJSON())).toMatchSnapshot();
  });
});
