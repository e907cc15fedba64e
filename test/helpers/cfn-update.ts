/**
 * What CloudFormation refuses, or replaces, when a stack deployed from one template is updated to another: the
 * rules a template's shape alone does not show (a type change under one logical id is refused outright: "Update
 * of resource type is not permitted"; a custom resource's ServiceToken cannot be changed), and which resources it
 * would touch at all (an Update to a custom resource calls its provider).
 */
type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;
export interface TemplateJson {
  Resources: Resources;
}

const isCustom = (type: string) =>
  type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource';

/** Why CloudFormation would refuse the update from `before` to `after` (empty: it would not). */
export function refusedUpdate(before: TemplateJson, after: TemplateJson): string[] {
  const refused: string[] = [];
  for (const [id, old] of Object.entries(before.Resources)) {
    const now = after.Resources[id];
    if (!now) continue;
    if (now.Type !== old.Type) {
      refused.push(`${id}: Update of resource type is not permitted (${old.Type} -> ${now.Type})`);
    } else if (
      isCustom(old.Type) &&
      JSON.stringify(old.Properties?.ServiceToken) !== JSON.stringify(now.Properties?.ServiceToken)
    ) {
      refused.push(`${id}: a custom resource's ServiceToken cannot be modified`);
    }
  }
  return refused;
}

/** What the update does to each resource: created, deleted (in cleanup, after the rest succeeded) or updated. */
export function updatePlan(
  before: TemplateJson,
  after: TemplateJson,
): { created: string[]; deleted: string[]; updated: string[] } {
  const ids = (t: TemplateJson) => Object.keys(t.Resources);
  return {
    created: ids(after).filter((id) => !before.Resources[id]),
    deleted: ids(before).filter((id) => !after.Resources[id]),
    updated: ids(after).filter(
      (id) =>
        before.Resources[id] && JSON.stringify(before.Resources[id]) !== JSON.stringify(after.Resources[id]),
    ),
  };
}
