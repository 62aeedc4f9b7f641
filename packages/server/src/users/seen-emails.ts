import { createHash } from 'node:crypto';

/**
 * The emails already read in this file, to refuse a second row with one: 64 bits of each email's
 * SHA-256 and its line number in typed arrays (24 bytes a row at most, ~24 MB for a million rows),
 * instead of the strings themselves. Two different emails collide once in ~10^19 pairs.
 */
export class SeenEmails {
  private high = new Uint32Array(1024);
  private low = new Uint32Array(1024);
  private lines = new Uint32Array(1024);
  private count = 0;

  /** The line that first had this normalised email, or undefined (and the email is remembered at `line`). */
  firstLineOf(emailNormalized: string, line: number): number | undefined {
    const digest = createHash('sha256').update(emailNormalized).digest();
    const high = digest.readUInt32BE(0);
    // 0/0 marks an empty slot; a digest starting with 64 zero bits is moved off it.
    const low = digest.readUInt32BE(4) || (high === 0 ? 1 : 0);
    if ((this.count + 1) * 2 > this.high.length) this.grow();
    const found = this.probe(high, low);
    if (this.high[found] !== 0 || this.low[found] !== 0) return this.lines[found];
    this.high[found] = high;
    this.low[found] = low;
    this.lines[found] = line;
    this.count += 1;
    return undefined;
  }

  // Linear probing in a power-of-two table kept at most half full.
  private probe(high: number, low: number): number {
    const mask = this.high.length - 1;
    let slot = (low ^ high) & mask;
    while ((this.high[slot] !== 0 || this.low[slot] !== 0) && (this.high[slot] !== high || this.low[slot] !== low)) slot = (slot + 1) & mask;
    return slot;
  }

  private grow(): void {
    const { high, low, lines } = this;
    this.high = new Uint32Array(high.length * 2);
    this.low = new Uint32Array(high.length * 2);
    this.lines = new Uint32Array(high.length * 2);
    for (let slot = 0; slot < high.length; slot += 1) {
      if (high[slot] === 0 && low[slot] === 0) continue;
      const target = this.probe(high[slot]!, low[slot]!);
      this.high[target] = high[slot]!;
      this.low[target] = low[slot]!;
      this.lines[target] = lines[slot]!;
    }
  }
}
