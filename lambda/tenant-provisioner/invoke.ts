/**
 * A synchronous invoke of one of the cell's functions with a JSON event: its JSON answer, or its error's message
 * (a function's error comes back as a payload, not as a thrown error). The runner uses it for its launcher, the
 * operator's `npm run tenant -- --aws` for the runner.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';

export class FunctionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FunctionError';
  }
}

export async function invokeJson<T>(lambda: LambdaClient, functionName: string, event: unknown): Promise<T> {
  const r = await lambda.send(
    new InvokeCommand({
      FunctionName: functionName,
      InvocationType: 'RequestResponse',
      Payload: new TextEncoder().encode(JSON.stringify(event)),
    }),
  );
  const body = r.Payload ? new TextDecoder().decode(r.Payload) : '';
  if (r.FunctionError) {
    let message = body || r.FunctionError;
    try {
      message = (JSON.parse(body) as { errorMessage?: string }).errorMessage ?? message;
    } catch {
      // not JSON: the raw body is the message
    }
    throw new FunctionError(message);
  }
  return JSON.parse(body) as T;
}
