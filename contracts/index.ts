/**
 * Contracts: every value that two runtimes (the CDK app, the Lambdas, the API, the local tools) must spell alike,
 * defined once. Pure TypeScript with no imports outside this folder, so every runtime can import it and every
 * bundle stays small. A test fails when any other source file spells one of these values itself.
 */
export * from './tenant-id';
export * from './identity';
export * from './database';
export * from './stacks';
export * from './resources';
export * from './ssm';
export * from './events';
export * from './registry';
export * from './api';
