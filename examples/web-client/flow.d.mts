import type { createGatehouseClient } from '../../packages/client/src/index.ts';

export function runExample(options: {
  createGatehouseClient: typeof createGatehouseClient;
  baseUrl: string;
  log?: (line: string) => void;
}): Promise<{ email: string; userId: number }>;
