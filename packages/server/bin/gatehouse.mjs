#!/usr/bin/env node
// `npx gatehouse …` from the project (npm links this into node_modules/.bin for the workspace): the
// same CLI as `npm run gatehouse -- …`. It bundles the TypeScript first, as `npm start` does (about
// 0.1 s), so the command runs on plain Node, without a TypeScript loader, on Node 20 and 24 alike.
await import('../../../scripts/build.mjs');
await import('../../../dist/cli.js');
