// Child process of scenario (c): Argon2id hashes/s with Gatehouse's parameters on Gatehouse's own
// hashing pool (low-priority worker threads, one per available core), without HTTP.
// Usage: node --import tsx bench/lib/argon2-rate.ts <seconds> ; prints one JSON line.
import { availableParallelism } from 'node:os';
import { createHashingPool } from '../../packages/server/src/passwords/hashing-pool.ts';

export const gatehouseArgon2Options = { algorithm: 2 /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

async function measure(seconds: number): Promise<void> {
  const threadPoolSize = availableParallelism();
  // Twice the pool size keeps every worker busy without queueing much in JS.
  const inFlight = threadPoolSize * 2;
  const pool = createHashingPool({ threads: threadPoolSize, queueMax: inFlight });
  await pool.hash('warm-up password', gatehouseArgon2Options);
  let hashes = 0;
  const startedAt = performance.now();
  const endsAt = startedAt + seconds * 1000;
  const worker = async (index: number) => {
    while (performance.now() < endsAt) {
      await pool.hash(`benchmark password number ${index}`, gatehouseArgon2Options);
      hashes++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, index) => worker(index)));
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  await pool.close();
  process.stdout.write(`${JSON.stringify({ hashesPerSecond: hashes / elapsedSeconds, hashes, elapsedSeconds, threadPoolSize, inFlight })}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await measure(Number(process.argv[2] ?? 4));
