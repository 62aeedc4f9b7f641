// npm run example:web-client (builds @gatehouse/client first), with Gatehouse running:
//   GATEHOUSE_URL=http://127.0.0.1:2000 node examples/web-client/main.mjs
import { createGatehouseClient, isGatehouseError } from '@gatehouse/client';
import { runExample } from './flow.mjs';

const baseUrl = process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:2000';
console.log(`Gatehouse at ${baseUrl}`);
try {
  await runExample({ createGatehouseClient, baseUrl });
} catch (error) {
  if (isGatehouseError(error, 'network_error')) {
    console.error(`Nothing answers at ${baseUrl}: start Gatehouse first (npm start), or set GATEHOUSE_URL.`);
  } else {
    console.error(error);
  }
  process.exitCode = 1;
}
