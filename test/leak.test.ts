// Resident memory stays flat over repeated loads, disposals and aborted generations: a service
// that reloads models or cancels requests all day must not grow. Measured in a fresh node process
// with --expose-gc (scripts/leak-check.mjs) so that JS garbage is collected before each reading
// and no other test's allocations blur the figure.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { fixtureModel } from './helpers/fixtures.js';
import { repoRoot } from './helpers/paths.js';

const MB = 1024 * 1024;

describe('leaks', () => {
  it('200 loads/disposes and 100 aborted generations grow resident memory by under 5 MB each', () => {
    const out = execFileSync(process.execPath, ['--expose-gc', path.join(repoRoot, 'scripts', 'leak-check.mjs'), fixtureModel, '200', '100'], {
      encoding: 'utf8',
      timeout: 600_000,
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      loadGrowthBytes: number;
      abortGrowthBytes: number;
      aborted: number;
      completed: number;
      usableAfter: boolean;
    };
    console.log(
      `load/dispose x200: ${(r.loadGrowthBytes / MB).toFixed(2)} MB; aborted generations x100 ` +
        `(${r.aborted} aborted mid-run, ${r.completed} finished before the abort landed): ${(r.abortGrowthBytes / MB).toFixed(2)} MB`,
    );
    expect(r.loadGrowthBytes).toBeLessThan(5 * MB);
    expect(r.abortGrowthBytes).toBeLessThan(5 * MB);
    expect(r.aborted + r.completed).toBe(100);
    expect(r.aborted).toBeGreaterThanOrEqual(90);
    expect(r.usableAfter).toBe(true);
  }, 600_000);
});
