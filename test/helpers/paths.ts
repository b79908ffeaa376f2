// Locations shared by the tests. The fixtures live beside the repository (../shared/fixtures),
// in CI as in development; they are never copied into the repo.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function findFixtures(): string {
  const candidates = [
    process.env.VARGPT_FIXTURES,
    path.resolve(repoRoot, '..', 'shared', 'fixtures'),
    path.resolve(repoRoot, 'shared', 'fixtures'),
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new Error(`fixtures not found (looked in ${candidates.filter(Boolean).join(', ')}); set VARGPT_FIXTURES`);
}

export const fixturesDir = findFixtures();
export const tinyDir = path.join(fixturesDir, 'vargpt-v1-tiny');
export const tinyModelDir = path.join(tinyDir, 'model');
export const tinyBf16Dir = path.join(tinyDir, 'model-bf16-sharded');
export const tinyExpectedDir = path.join(tinyDir, 'expected');
