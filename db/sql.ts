/**
 * A tiny SQL builder whose only job is to keep values and identifiers out of SQL text.
 *
 *   sql`SELECT * FROM invoices WHERE id = ${id}`            values become $1, $2 ... (server-side parameters)
 *   sql`SET LOCAL ROLE ${ident(role)}`                       identifiers are quoted by the driver
 *
 * The same statement can also be rendered as one literal-only string (`toLiteralSql`) so a whole transaction
 * fits in one simple-query message: one network round trip instead of three or four. Values are then escaped
 * by the driver's `escapeLiteral`, never by hand, and they can only come from the template's holes: the SQL
 * text itself is never parsed or rewritten.
 */
import { escapeIdentifier, escapeLiteral } from 'pg';

export type SqlValue = string | number | bigint | boolean | null | Date;

export class Identifier {
  constructor(readonly name: string) {
    if (name.length === 0 || name.includes('\0'))
      throw new Error(`invalid SQL identifier ${JSON.stringify(name)}`);
  }
}

export class Sql {
  constructor(
    readonly strings: readonly string[],
    readonly values: readonly (SqlValue | Sql | Identifier)[],
  ) {}

  /** Parameterised form for the extended protocol: `{ text: '... $1 ...', values: [...] }`. */
  toQuery(): { text: string; values: SqlValue[] } {
    const values: SqlValue[] = [];
    const text = this.render((v) => {
      values.push(v);
      return `$${values.length}`;
    });
    return { text, values };
  }

  /** Literal form for the simple-query protocol: every value escaped by the driver as a literal. */
  toLiteralSql(): string {
    return this.render(literal);
  }

  private render(value: (v: SqlValue) => string): string {
    let out = this.strings[0];
    this.values.forEach((v, i) => {
      if (v instanceof Sql) out += v.render(value);
      else if (v instanceof Identifier) out += escapeIdentifier(v.name);
      else out += value(v);
      out += this.strings[i + 1];
    });
    return out;
  }
}

export function sql(strings: TemplateStringsArray, ...values: (SqlValue | Sql | Identifier)[]): Sql {
  return new Sql(strings, values);
}

/** An identifier, quoted with the driver's escaping when rendered. */
export function ident(name: string): Identifier {
  return new Identifier(name);
}

/** Joins fragments with a separator (itself plain SQL text, e.g. ', '). */
export function join(parts: readonly Sql[], separator: string): Sql {
  if (parts.length === 0) return sql``;
  const strings = ['', ...parts.slice(1).map(() => separator), ''];
  return new Sql(strings, parts);
}

/** Plain SQL text with no values, e.g. a migration file's body. */
export function raw(text: string): Sql {
  return new Sql([text], []);
}

function literal(v: SqlValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return `'${v.toString()}'`;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`cannot render ${v} as an SQL literal`);
    return `'${String(v)}'`;
  }
  if (v instanceof Date) return escapeLiteral(v.toISOString());
  if (typeof v === 'string') {
    if (v.includes('\0')) throw new Error('SQL text values cannot contain NUL bytes');
    return escapeLiteral(v);
  }
  throw new Error(`unsupported SQL value of type ${typeof v}`);
}
