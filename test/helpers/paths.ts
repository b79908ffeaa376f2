// Locations shared by the tests. The fixtures live beside the checkout (../shared/fixtures from
// the repository root, in CI as in development) and are never copied into the repo. Worktrees and
// CI checkouts may sit at other depths, so the search walks upwards; VARGPT_FIXTURES, when set, is
// the one place looked at.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function fixtureCandidates(): string[] {
  if (process.env.VARGPT_FIXTURES) return [path.resolve(process.env.VARGPT_FIXTURES)];
  const candidates: string[] = [];
  for (let dir = repoRoot; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, 'shared', 'fixtures'), path.join(dir, '..', 'shared', 'fixtures'));
    if (path.dirname(dir) === dir) break;
  }
  return candidates;
}

const candidates = fixtureCandidates();
const found = candidates.find((c) => existsSync(path.join(c, 'vargpt-v1-tiny', 'expected', 'manifest.json')));

// Why the fixture tests cannot run here (one line), or null when the fixtures were found. A fresh
// clone has no fixtures: the tests that need them are skipped with this reason (see
// test/helpers/fixture-gate.ts), unless VARGPT_REQUIRE_FIXTURES=1 (CI), which makes it a failure.
export const fixturesMissing: string | null = found
  ? null
  : process.env.VARGPT_FIXTURES
    ? `needs the reference fixtures: VARGPT_FIXTURES=${process.env.VARGPT_FIXTURES} holds no vargpt-v1-tiny/expected/manifest.json`
    : 'needs the reference fixtures: ../shared/fixtures not found (set VARGPT_FIXTURES)';
export const fixturesRequired = process.env.VARGPT_REQUIRE_FIXTURES === '1';
if (fixturesMissing && fixturesRequired) {
  throw new Error(`VARGPT_REQUIRE_FIXTURES=1 but the fixtures are missing (looked in ${candidates.slice(0, 4).join(', ')}, ...); set VARGPT_FIXTURES`);
}

// Where the fixtures are; without them, where they would be (paths that do not exist).
export const fixturesDir = found ?? path.resolve(repoRoot, '..', 'shared', 'fixtures');
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
