/**
 * "Did you mean ...?" for misspelled driver and parameter names.
 *
 * @module
 */

/**
 * The edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two
 * adjacent letters each count 1 (optimal string alignment), so `hots` is 1 from `host`.
 */
export function editDistance(a: string, b: string): number {
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        current[j] = Math.min(current[j], beforePrevious[j - 2] + 1);
      }
    }
    beforePrevious = previous;
    previous = current;
  }
  return previous[b.length];
}

/**
 * The candidate closest to `name`, when it is close enough to be a plausible typo
 * (at most a third of the longer name's letters differ, and at least one matches); else undefined.
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate);
    const limit = Math.max(1, Math.floor(Math.max(lower.length, candidate.length) / 3));
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** The most edits an unknown name may be from a known one to count as a near miss. */
export const NEAR_MISS_DISTANCE = 2;

/**
 * The known name `name` is a misspelling of: the {@link closest} candidate, when it is at most
 * {@link NEAR_MISS_DISTANCE} edits away ignoring case (`HOST` is a near miss of `host`);
 * else undefined.
 */
export function nearMiss(name: string, candidates: readonly string[]): string | undefined {
  const guess = closest(name, candidates);
  return guess !== undefined && editDistance(name.toLowerCase(), guess) <= NEAR_MISS_DISTANCE
    ? guess
    : undefined;
}
