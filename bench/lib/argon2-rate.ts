// Child process of scenario (c): Argon2id hashes/s with Gatehouse's parameters on the default libuv pool.
// Usage: node --import tsx bench/lib/argon2-rate.ts <seconds> ; prints one JSON line.
import { hash, type Options } from '@node-rs/argon2';

export const gatehouseArgon2Options: Options = { algorithm: 2 /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

async function measure(seconds: number): Promise<void> {
  const threadPoolSize = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  // Twice the pool size keeps every pool thread busy without queueing much in JS.
  const inFlight = threadPoolSize * 2;
  await hash('warm-up password', gatehouseArgon2Options);
  let hashes = 0;
  const startedAt = performance.now();
  const endsAt = startedAt + seconds * 1000;
  const worker = async (index: number) => {
    while (performance.now() < endsAt) {
      await hash(`benchmark password number ${index}`, gatehouseArgon2Options);
      hashes++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, (_, index) => worker(index)));
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  process.stdout.write(`${JSON.stringify({ hashesPerSecond: hashes / elapsedSeconds, hashes, elapsedSeconds, threadPoolSize, inFlight })}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await measure(Number(process.argv[2] ?? 4));
