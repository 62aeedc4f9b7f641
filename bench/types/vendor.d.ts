// Minimal types for the three benchmark-only packages that ship none (no @types installed).
// Only what bench/ uses; delete a block if its @types package is ever added.

declare module 'express' {
  import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';

  export interface Request extends IncomingMessage {
    body: unknown;
    headers: IncomingHttpHeaders;
  }
  export interface Response extends ServerResponse {
    locals: Record<string, unknown>;
    status(code: number): Response;
    json(body: unknown): Response;
  }
  export type NextFunction = (error?: unknown) => void;
  export type Handler = (request: Request, response: Response, next: NextFunction) => void;
  export interface Application {
    (request: IncomingMessage, response: ServerResponse): void;
    disable(setting: string): Application;
    use(...handlers: Handler[]): Application;
    get(path: string, ...handlers: Handler[]): Application;
    post(path: string, ...handlers: Handler[]): Application;
    listen(port: number, host: string, callback?: () => void): Server;
  }
  interface Express {
    (): Application;
    json(options?: { limit?: string | number }): Handler;
  }
  const express: Express;
  export default express;
}

declare module 'jsonwebtoken' {
  export interface SignOptions {
    algorithm?: string;
    expiresIn?: number | string;
  }
  export interface VerifyOptions {
    algorithms?: string[];
  }
  export type JwtPayload = Record<string, unknown>;
  function sign(payload: object, secret: string | Buffer, options?: SignOptions): string;
  function verify(token: string, secret: string | Buffer, options?: VerifyOptions): JwtPayload | string;
  const jwt: { sign: typeof sign; verify: typeof verify };
  export default jwt;
}

declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  export interface Request {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string;
  }
  export interface Options {
    url: string;
    connections?: number;
    duration?: number;
    amount?: number;
    pipelining?: number;
    timeout?: number;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    requests?: Request[];
    overallRate?: number;
    connectionRate?: number;
  }
  export interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    p50: number;
    p90: number;
    p99: number;
    total?: number;
  }
  export interface Result {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    statusCodeStats: Record<string, { count: number }>;
    requests: Histogram;
    latency: Histogram;
  }
  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void;
  }
  function autocannon(options: Options, callback?: (error: Error | null, result: Result) => void): Instance;
  export default autocannon;
}
