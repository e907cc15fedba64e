declare module 'asl-validator' {
  /** Validates an Amazon States Language definition (the package ships no types). */
  export default function validator(definition: unknown): { isValid: boolean; errors: unknown[] };
}
