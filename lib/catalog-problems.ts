/**
 * What a catalog or a request got wrong, as data: a code, the tenant and field it concerns, and the message users
 * see (lib/catalog.ts reports every problem at once in a CatalogError).
 */

/** What a problem is about, so code can decide on it without reading its message. */
export type ProblemCode =
  | 'unreadable'
  | 'invalid-document'
  | 'unknown-field'
  | 'invalid-id'
  | 'invalid-field'
  | 'silo-only-setting'
  | 'duplicate-id'
  | 'duplicate-hostname'
  | 'cidr-overlap';

/** One problem with a catalog or a request: a code, the tenant and field it concerns, and the message users see. */
export interface Problem {
  readonly code: ProblemCode;
  /** The tenant's id, when the id itself is usable. */
  readonly tenantId?: string;
  /** The field, as written in the catalog (`settings.vpcCidr`). */
  readonly field?: string;
  readonly message: string;
}

export class CatalogError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly Problem[],
  ) {
    super(
      `${source}: the tenant catalog has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
        problems.map((p) => `  - ${p.message}`).join('\n'),
    );
    this.name = 'CatalogError';
  }

  /** The problems' messages, in order. */
  get messages(): string[] {
    return this.problems.map((p) => p.message);
  }
}

export const problem = (code: ProblemCode, message: string, tenantId?: string, field?: string): Problem => ({
  code,
  message,
  ...(tenantId !== undefined ? { tenantId } : {}),
  ...(field !== undefined ? { field } : {}),
});

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
