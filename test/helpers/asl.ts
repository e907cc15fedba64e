/**
 * A small interpreter for the Amazon States Language subset our workflows use, so tests execute a synthesized
 * state machine definition instead of only inspecting it: a path that does not exist fails the execution with
 * States.Runtime exactly where Step Functions would, and no Catch can handle it.
 *
 * Covers: Pass, Task, Choice, Wait, Succeed, Fail, Map (inline); Parameters / ItemSelector with `.$` paths,
 * the context object (`$$.Execution.Id`, `$$.Task.Token`), the intrinsic States.Format; ResultPath (including null), OutputPath,
 * ResultSelector; Retry (ErrorEquals, MaxAttempts, IntervalSeconds, BackoffRate: simulated time) and Catch
 * (ErrorEquals, ResultPath), with States.ALL never matching States.Runtime; TimeoutSeconds on an execution.
 */

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** An error a task raised: its name (`Error`) and `Cause`, as Step Functions reports them. */
export class TaskError extends Error {
  constructor(
    readonly error: string,
    readonly cause: string,
  ) {
    super(`${error}: ${cause}`);
  }
}

/** Thrown by a test's task to end the execution as Step Functions would end it from outside (a timeout, an abort). */
export class StopExecution extends Error {
  constructor(readonly status: 'TIMED_OUT' | 'ABORTED') {
    super(`execution ${status}`);
  }
}

/** A terminal error (States.Runtime): no Catch or Retry applies. */
class RuntimeError extends TaskError {}

export interface Definition {
  StartAt: string;
  States: Record<string, Record<string, unknown>>;
  TimeoutSeconds?: number;
}

export interface RunOptions {
  /** Runs a Task: its Resource, its effective parameters, and the state's name. */
  task(resource: string, parameters: Json, state: string): Promise<Json>;
  executionId?: string;
  /** Stop after this many state transitions (a loop that never ends is a failure). */
  maxTransitions?: number;
  /** A Task state succeeded with this output (its TaskStateExited event in the execution's history). */
  onTaskExit?(state: string, output: Json): void;
}

export interface Execution {
  status: 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  output?: Json;
  error?: string;
  cause?: string;
  /** Every state entered, in order. */
  path: string[];
  /** Simulated seconds spent in Wait states and retry intervals. */
  seconds: number;
}

function get(root: Json, path: string, context: Json): Json {
  const [base, rest] = path.startsWith('$$') ? [context, path.slice(2)] : [root, path.slice(1)];
  if (rest === '') return base;
  let v: Json = base;
  for (const part of rest.replace(/^\./, '').split('.')) {
    const m = /^([^[\]]+)((\[\d+\])*)$/.exec(part);
    if (!m) throw new RuntimeError('States.Runtime', `unsupported path ${path}`);
    const keys: (string | number)[] = [m[1], ...[...m[2].matchAll(/\[(\d+)\]/g)].map((x) => Number(x[1]))];
    for (const k of keys) {
      if (v === null || typeof v !== 'object' || !(k in (v as Record<string, Json>))) {
        throw new RuntimeError(
          'States.Runtime',
          `The JSONPath '${path}' could not be found in the input '${JSON.stringify(root)}'`,
        );
      }
      v = (v as Record<string, Json>)[k as string];
    }
  }
  return v;
}

function set(root: Json, path: string, value: Json): Json {
  if (path === '$') return value;
  const copy = JSON.parse(JSON.stringify(root ?? {})) as Record<string, Json>;
  const parts = path.slice(2).split('.');
  let o = copy;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) o[p] = {};
    o = o[p] as Record<string, Json>;
  }
  o[parts[parts.length - 1]] = value;
  return copy;
}

function intrinsic(expr: string, input: Json, context: Json): Json {
  const m = /^States\.Format\('((?:[^'\\]|\\.)*)'((?:,\s*[^,)]+)*)\)$/.exec(expr.trim());
  if (!m) throw new RuntimeError('States.Runtime', `unsupported intrinsic ${expr}`);
  const args = m[2]
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean)
    .map((a) => get(input, a, context));
  let i = 0;
  return m[1].replace(/\{\}/g, () => String(args[i++]));
}

function resolve(template: Json, input: Json, context: Json): Json {
  if (Array.isArray(template)) return template.map((t) => resolve(t, input, context));
  if (template === null || typeof template !== 'object') return template;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(template)) {
    if (k.endsWith('.$')) {
      const expr = v as string;
      out[k.slice(0, -2)] = expr.startsWith('States.')
        ? intrinsic(expr, input, context)
        : get(input, expr, context);
    } else out[k] = resolve(v, input, context);
  }
  return out;
}

function matches(errorEquals: string[], error: string): boolean {
  if (error === 'States.Runtime') return false;
  return errorEquals.includes(error) || errorEquals.includes('States.ALL');
}

function choose(rule: Record<string, unknown>, input: Json, context: Json): boolean {
  if (rule.Or) return (rule.Or as Record<string, unknown>[]).some((r) => choose(r, input, context));
  if (rule.And) return (rule.And as Record<string, unknown>[]).every((r) => choose(r, input, context));
  if (rule.Not) return !choose(rule.Not as Record<string, unknown>, input, context);
  const variable = rule.Variable as string;
  if ('IsPresent' in rule) {
    let present = true;
    try {
      get(input, variable, context);
    } catch {
      present = false;
    }
    return present === rule.IsPresent;
  }
  const value = get(input, variable, context);
  if ('StringEquals' in rule) return value === rule.StringEquals;
  if ('BooleanEquals' in rule) return value === rule.BooleanEquals;
  if ('NumericEquals' in rule) return value === rule.NumericEquals;
  if ('NumericGreaterThan' in rule) return (value as number) > (rule.NumericGreaterThan as number);
  throw new RuntimeError('States.Runtime', `unsupported Choice rule ${JSON.stringify(rule)}`);
}

export async function execute(def: Definition, input: Json, options: RunOptions): Promise<Execution> {
  const context: Json = {
    Execution: { Id: options.executionId ?? 'arn:aws:states:us-east-1:111122223333:execution:wf:run' },
  };
  const path: string[] = [];
  const clock = { seconds: 0 };
  const max = options.maxTransitions ?? 500;
  const finish = (e: Omit<Execution, 'path' | 'seconds'>): Execution => ({
    ...e,
    path,
    seconds: clock.seconds,
  });
  try {
    const output = await runGraph(def, input, context, options, path, clock, max);
    if (def.TimeoutSeconds !== undefined && clock.seconds > def.TimeoutSeconds) {
      return finish({ status: 'TIMED_OUT', error: 'States.Timeout' });
    }
    return finish({ status: 'SUCCEEDED', output });
  } catch (e) {
    if (e instanceof TaskError) return finish({ status: 'FAILED', error: e.error, cause: e.cause });
    if (e instanceof StopExecution) return finish({ status: e.status, error: `States.${e.status}` });
    throw e;
  }
}

async function runGraph(
  def: Definition,
  input: Json,
  context: Json,
  options: RunOptions,
  path: string[],
  clock: { seconds: number },
  max: number,
): Promise<Json> {
  let name: string | undefined = def.StartAt;
  let data = input;
  while (name) {
    if (path.length >= max)
      throw new Error(`more than ${max} transitions: the workflow loops (${path.slice(-10).join(' > ')})`);
    path.push(name);
    const s = def.States[name] as Record<string, unknown>;
    if (!s) throw new RuntimeError('States.Runtime', `no state named ${name}`);
    const next = s.Next as string | undefined;
    switch (s.Type) {
      case 'Succeed':
        return data;
      case 'Fail': {
        const cause = s.CausePath
          ? String(get(data, s.CausePath as string, context))
          : ((s.Cause as string) ?? '');
        throw new TaskError((s.Error as string) ?? 'States.Fail', cause);
      }
      case 'Pass': {
        const result = s.Parameters
          ? resolve(s.Parameters as Json, data, context)
          : ((s.Result as Json) ?? data);
        data = applyResultPath(data, result, s);
        name = s.End ? undefined : next;
        break;
      }
      case 'Wait':
        clock.seconds += Number(s.Seconds ?? 0);
        name = next;
        break;
      case 'Choice': {
        const rule = (s.Choices as Record<string, unknown>[]).find((c) => choose(c, data, context));
        name = (rule?.Next as string) ?? (s.Default as string);
        if (!name)
          throw new TaskError('States.NoChoiceMatched', `no choice matched in ${path[path.length - 1]}`);
        break;
      }
      case 'Task':
      case 'Map': {
        const outcome = await runWithRetries(s, name, data, context, options, clock, path, max);
        if ('error' in outcome) {
          const handler = ((s.Catch as Record<string, unknown>[]) ?? []).find((c) =>
            matches(c.ErrorEquals as string[], outcome.error.error),
          );
          if (!handler) throw outcome.error;
          const errorOutput: Json = { Error: outcome.error.error, Cause: outcome.error.cause };
          data = applyResultPath(data, errorOutput, handler);
          name = handler.Next as string;
          break;
        }
        let result = outcome.result;
        if (s.ResultSelector) result = resolve(s.ResultSelector as Json, result, context);
        data = applyResultPath(data, result, s);
        if (s.Type === 'Task') options.onTaskExit?.(name, data);
        name = s.End ? undefined : next;
        break;
      }
      default:
        throw new RuntimeError('States.Runtime', `unsupported state type ${String(s.Type)}`);
    }
  }
  return data;
}

function applyResultPath(input: Json, result: Json, s: Record<string, unknown>): Json {
  const withResult = !('ResultPath' in s)
    ? result
    : s.ResultPath === null
      ? input
      : set(input, s.ResultPath as string, result);
  return s.OutputPath ? get(withResult, s.OutputPath as string, {}) : withResult;
}

async function runWithRetries(
  s: Record<string, unknown>,
  name: string,
  data: Json,
  context: Json,
  options: RunOptions,
  clock: { seconds: number },
  path: string[],
  max: number,
): Promise<{ result: Json } | { error: TaskError }> {
  const attempts = new Map<Record<string, unknown>, number>();
  for (;;) {
    try {
      if (s.Type === 'Map') {
        const items = get(data, (s.ItemsPath as string) ?? '$', context) as Json[];
        const processor = (s.ItemProcessor ?? s.Iterator) as Definition;
        const out: Json[] = [];
        for (const [index, value] of items.entries()) {
          const itemInput = s.ItemSelector
            ? resolve(s.ItemSelector as Json, data, {
                ...(context as object),
                Map: { Item: { Index: index, Value: value } },
              })
            : value;
          out.push(await runGraph(processor, itemInput, context, options, path, clock, max));
        }
        return { result: out };
      }
      // A task token for each attempt of a callback task (`$$.Task.Token`, as Step Functions gives one).
      const taskContext = {
        ...(context as object),
        Task: { Token: `token:${name}:${path.length}:${attempts.size}` },
      } as Json;
      const parameters = s.Parameters ? resolve(s.Parameters as Json, data, taskContext) : data;
      return { result: await options.task(s.Resource as string, parameters, name) };
    } catch (e) {
      if (e instanceof StopExecution) throw e;
      const err =
        e instanceof TaskError
          ? e
          : new TaskError(
              (e as Error).name || 'Error',
              JSON.stringify({ errorMessage: (e as Error).message }),
            );
      if (err instanceof RuntimeError) throw err;
      const retrier = ((s.Retry as Record<string, unknown>[]) ?? []).find((r) =>
        matches(r.ErrorEquals as string[], err.error),
      );
      const used = retrier ? (attempts.get(retrier) ?? 0) : 0;
      if (!retrier || used >= Number(retrier.MaxAttempts ?? 3)) return { error: err };
      attempts.set(retrier, used + 1);
      clock.seconds += Number(retrier.IntervalSeconds ?? 1) * Number(retrier.BackoffRate ?? 2) ** used;
    }
  }
}

/** The state machine's definition from a synthesized template, with its tokens rendered as readable strings. */
export function definitionOf(template: {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}): Definition {
  const [sm] = Object.values(template.Resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  const body = sm.Properties.DefinitionString as string | { 'Fn::Join': [string, unknown[]] };
  if (typeof body === 'string') return JSON.parse(body);
  const render = (p: unknown): string => {
    if (typeof p === 'string') return p;
    const o = p as Record<string, unknown>;
    if (o.Ref === 'AWS::Partition') return 'aws';
    if (o.Ref === 'AWS::Region') return 'us-east-1';
    if (o.Ref === 'AWS::AccountId') return '111122223333';
    if (o['Fn::GetAtt']) return `arn:aws:resource:::${(o['Fn::GetAtt'] as string[])[0]}`;
    if (o.Ref) return `ref:${o.Ref as string}`;
    return 'TOKEN';
  };
  return JSON.parse(body['Fn::Join'][1].map(render).join(''));
}
