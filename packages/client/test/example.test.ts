// examples/web-client runs as the README says, against a live Gatehouse on both dialects: its flow
// with this package's client (main.mjs only adds the import from the built package and the URL).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runExample } from '../../../examples/web-client/flow.mjs';
import { startListeningTestApp, testDialects, type TestApp } from '../../server/test/helpers.ts';
import { createGatehouseClient } from '../src/index.ts';

describe.each(testDialects())('examples/web-client [%s]', (dialect) => {
  let test: TestApp;
  let origin: string;
  beforeAll(async () => {
    ({ test, origin } = await startListeningTestApp(dialect));
  });
  afterAll(() => test.close());

  it('signs up, logs in, reads /me, refreshes, lists users and logs out', async () => {
    const lines: string[] = [];
    const { email } = await runExample({ createGatehouseClient, baseUrl: origin, log: (line) => lines.push(line) });
    expect(lines.map((line) => line.slice(0, 2))).toEqual(['1.', '2.', '3.', '4.', '5.', '6.']);
    expect(lines[0]).toContain(email);
    expect(lines[5]).toContain('not_signed_in');
    expect(test.openapi.takeProblems()).toEqual([]);
  });
});
