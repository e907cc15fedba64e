/** The API's unauthenticated routes: what load balancers and container health checks may call. */
export const HEALTH_PATH = '/health';
export const READY_PATH = '/ready';
