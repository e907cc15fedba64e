import type { PoolClient } from 'pg';
import { bootstrapDatabase } from '../../db/bootstrap';
import { runUnitOfWork, UnitStatement } from '../../db/unit-of-work';
import { createTestDatabase, RUNTIME_PASSWORD, TestDatabase, TEST_CONTEXT_KEY } from './harness';

// The unnamed statement a unit of work keeps (keepUnnamed: how enter() is sent, db/tenant-context.ts), on one
// connection of the runtime role: reused only while nothing else can have changed it, and beyond SQL's reach.
let db: TestDatabase;
let client: PoolClient;
/** The Parse messages the connection sent (statement name and text). */
const parses: { name: string; text: string }[] = [];

const KEPT = 'SELECT $1::text AS v';
const kept = (v: string): UnitStatement => ({ text: KEPT, values: [v], keepUnnamed: true });
const parsesOfKept = () => parses.filter((p) => p.name === '' && p.text === KEPT).length;
async function unit(statements: UnitStatement[]) {
  return runUnitOfWork<{ v: string }>(client, statements);
}

beforeAll(async () => {
  db = await createTestDatabase('unit_of_work');
  const master = await db.master();
  await bootstrapDatabase(master, 'pool', {
    contextKey: TEST_CONTEXT_KEY,
    runtimePasswords: { pool: RUNTIME_PASSWORD },
  });
  await master.end();
  client = await db.poolAs('app_pool', { max: 1 }).connect();
  const connection = (client as unknown as { connection: { parse(m: { name: string; text: string }): void } })
    .connection;
  const parse = connection.parse.bind(connection);
  connection.parse = (m) => {
    parses.push({ name: m.name, text: m.text });
    parse(m);
  };
});

afterAll(async () => {
  client.release(true);
  await db.drop();
});

test('a kept unnamed statement is parsed once and then bound as it is, with each unit its own values', async () => {
  const before = parsesOfKept();
  expect((await unit([kept('one')])).last.rows).toEqual([{ v: 'one' }]);
  expect((await unit([kept('two')])).last.rows).toEqual([{ v: 'two' }]);
  expect(
    (await unit([kept('three'), { text: 'SELECT 42 AS v', name: 'named_read' }])).results[0].rows,
  ).toEqual([{ v: 'three' }]);
  expect(parsesOfKept() - before).toBe(1);
});

test('SQL cannot remove or replace it: after DEALLOCATE ALL and a PREPARE the next unit binds the same statement', async () => {
  await unit([kept('warm')]);
  const before = parsesOfKept();
  await unit([kept('x'), { text: 'DEALLOCATE ALL', name: 'attack_1' }]);
  await expect(
    unit([kept('x'), { text: `PREPARE "" AS SELECT 'stolen' AS v`, name: 'attack_2' }]),
  ).rejects.toThrow(/zero-length delimited identifier/);
  // The failed unit makes the next one parse again (nothing is assumed after an error) ...
  expect((await unit([kept('after')])).last.rows).toEqual([{ v: 'after' }]);
  // ... and from then on it is bound as it is again, still the same statement.
  await unit([kept('x'), { text: 'DEALLOCATE ALL', name: 'attack_3' }]);
  expect((await unit([kept('again')])).last.rows).toEqual([{ v: 'again' }]);
  expect(parsesOfKept() - before).toBe(1);
});

test('anything else that can change the unnamed statement makes the next unit parse it again', async () => {
  await unit([kept('warm')]);
  let before = parsesOfKept();
  await client.query('SELECT 1'); // a simple query drops the unnamed statement
  expect((await unit([kept('a')])).last.rows).toEqual([{ v: 'a' }]);
  expect(parsesOfKept() - before).toBe(1);

  before = parsesOfKept();
  await client.query('SELECT $1::int AS n', [7]); // another unnamed statement replaces it
  expect((await unit([kept('b')])).last.rows).toEqual([{ v: 'b' }]);
  expect(parsesOfKept() - before).toBe(1);

  before = parsesOfKept();
  // A unit that binds it as it is but then parses another unnamed statement leaves that one.
  expect((await unit([kept('c'), { text: 'SELECT 2 AS v' }])).results[0].rows).toEqual([{ v: 'c' }]);
  expect(parsesOfKept() - before).toBe(0);
  expect((await unit([kept('d')])).last.rows).toEqual([{ v: 'd' }]);
  expect(parsesOfKept() - before).toBe(1);
});

test('a value that cannot be serialised fails its unit before anything is sent, and the connection serves on', async () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  await expect(
    unit([kept('before'), { name: 'named_echo', text: 'SELECT $1::text AS v', values: [circular] }]),
  ).rejects.toThrow(/circular/i);
  const r = await unit([kept('k'), { name: 'named_echo', text: 'SELECT $1::text AS v', values: ['after'] }]);
  expect(r.results.map((x) => x.rows)).toEqual([[{ v: 'k' }], [{ v: 'after' }]]);
});

test('the driver sends Parse, Query and Close only through the methods the unit of work watches', () => {
  // If a pg upgrade adds another way to send them, the belief about the unnamed statement could go stale:
  // this fails first, and the new method must be watched too (db/unit-of-work.ts watch).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Connection = require('pg/lib/connection') as { prototype: Record<string, unknown> };
  const source = Object.getOwnPropertyNames(Connection.prototype)
    .filter((m) => m !== 'constructor' && typeof Connection.prototype[m] === 'function')
    .filter((m) => /serialize\.(parse|query|close)\(/.test(String(Connection.prototype[m])))
    .sort();
  expect(source).toEqual(['close', 'parse', 'query']);
});
