// Locations shared by the tests. The fixtures live beside the checkout (../shared/fixtures from
// the repository root, in CI as in development) and are never copied into the repo. Worktrees and
// CI checkouts may sit at other depths, so the search walks upwards; VARGPT_FIXTURES overrides.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function findFixtures(): string {
  const candidates: string[] = [];
  if (process.env.VARGPT_FIXTURES) candidates.push(path.resolve(process.env.VARGPT_FIXTURES));
  for (let dir = repoRoot; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, 'shared', 'fixtures'), path.join(dir, '..', 'shared', 'fixtures'));
    if (path.dirname(dir) === dir) break;
  }
  const found = candidates.find((c) => existsSync(path.join(c, 'vargpt-v1-tiny', 'expected', 'manifest.json')));
  if (!found) throw new Error(`fixtures not found (looked in ${candidates.slice(0, 4).join(', ')}, ...); set VARGPT_FIXTURES`);
  return found;
}

export const fixturesDir = findFixtures();
export const tinyDir = path.join(fixturesDir, 'vargpt-v1-tiny');
export const tinyModelDir = path.join(tinyDir, 'model');
export const tinyBf16Dir = path.join(tinyDir, 'model-bf16-sharded');
export const tinyExpectedDir = path.join(tinyDir, 'expected');
export const v11Dir = path.join(fixturesDir, 'vargpt-v1.1-tiny');
export const v11ModelDir = path.join(v11Dir, 'model');
export const v11ExpectedDir = path.join(v11Dir, 'expected');
export const blip3oDir = path.join(fixturesDir, 'blip3o-tiny');
export const blip3oModelDir = path.join(blip3oDir, 'model');
export const blip3oExpectedDir = path.join(blip3oDir, 'expected');
