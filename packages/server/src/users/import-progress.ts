/**
 * What an import shows on stderr while it runs: a cli-progress bar with rate and ETA on a terminal,
 * a plain line at every tenth of the file otherwise (logs, CI), JSON lines with --json. Refused lines
 * are printed as they are found, above the bar.
 */
import cliProgress from 'cli-progress';
import type { CommandIo } from '../clients/commands.ts';
import type { ImportCounts, Refusal } from './import.ts';

export interface ImportProgress {
  refused(refusal: Refusal): void;
  update(counts: Readonly<ImportCounts>, finished: boolean): void;
  stop(): void;
}

interface ProgressOptions {
  stderr: CommandIo['stderr'] & { isTTY?: boolean };
  json: boolean;
  totalBytes: number;
}

const PLAIN_STEPS = 10;

export function createImportProgress(options: ProgressOptions): ImportProgress {
  const { stderr, json, totalBytes } = options;
  const startedAt = performance.now();
  const rate = (counts: Readonly<ImportCounts>) => Math.round(counts.records / Math.max((performance.now() - startedAt) / 1000, 0.001));
  const describe = (refusal: Refusal) =>
    json ? JSON.stringify({ type: 'refused', line: refusal.line, code: refusal.code, message: refusal.message }) : `line ${refusal.line}: ${refusal.code}: ${refusal.message}`;

  if (stderr.isTTY && !json) {
    const bars = new cliProgress.MultiBar(
      {
        stream: stderr as unknown as NodeJS.WritableStream,
        format: 'import |{bar}| {percentage}% | {records} records, {imported} in, {refused} refused | {rate} rows/s | ETA {eta_formatted}',
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    const bar = bars.create(Math.max(totalBytes, 1), 0, { records: 0, imported: 0, refused: 0, rate: 0 });
    return {
      refused: (refusal) => bars.log(`${describe(refusal)}\n`),
      update: (counts) => bar.update(counts.bytesRead, { records: counts.records, imported: counts.imported, refused: counts.refused, rate: rate(counts) }),
      stop: () => {
        // Lines logged since the last redraw are written by a redraw, which stop() alone does not do.
        bars.update();
        bars.stop();
      },
    };
  }

  let nextStep = 1;
  return {
    refused: (refusal) => stderr.write(`${describe(refusal)}\n`),
    update(counts, finished) {
      // The last line waits for the last batch to be written, so its counts are the final ones.
      const fraction = finished ? 1 : Math.min(counts.bytesRead / Math.max(totalBytes, 1), 0.999);
      if (fraction * PLAIN_STEPS < nextStep) return;
      nextStep = Math.floor(fraction * PLAIN_STEPS) + 1;
      const rowsPerSecond = rate(counts);
      const elapsedSeconds = (performance.now() - startedAt) / 1000;
      const etaSeconds = fraction >= 1 ? 0 : Math.round((elapsedSeconds / Math.max(fraction, 1e-9)) * (1 - fraction));
      const percent = Math.floor(fraction * 100);
      stderr.write(
        json
          ? `${JSON.stringify({ type: 'progress', percent, records: counts.records, imported: counts.imported, skipped_existing: counts.skippedExisting, refused: counts.refused, rows_per_second: rowsPerSecond, eta_seconds: etaSeconds })}\n`
          : `import: ${percent}%, ${counts.records} records (${counts.imported} in, ${counts.skippedExisting} already registered, ${counts.refused} refused), ${rowsPerSecond} rows/s, ETA ${etaSeconds} s\n`,
      );
    },
    stop: () => undefined,
  };
}
