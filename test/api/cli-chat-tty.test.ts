// `vargpt chat` as a person uses it: in a terminal. The built CLI runs inside a tmux pane (a real
// pseudo-terminal, so stdin, stdout and stderr are all TTYs and the drawing bar is live); keys are
// typed with send-keys and the screen is read back with capture-pane.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixturesMissing, repoRoot, tinyModelDir } from '../helpers/paths.js';

const tmuxMissing = spawnSync('tmux', ['-V']).status === 0 ? null : 'tmux is not installed (apt-get install tmux)';
const skipReason = fixturesMissing ?? tmuxMissing;
const main = path.join(repoRoot, 'dist/cli/main.js');
const work = mkdtempSync(path.join(tmpdir(), 'vargpt-tty-'));
const socket = `vargpt-test-${process.pid}`;
const session = 'chat';

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', socket, '-f', '/dev/null', ...args], { encoding: 'utf8' });
}

// The visible screen, trailing blanks dropped.
function screen(): string[] {
  const lines = tmux('capture-pane', '-p', '-t', session).split('\n').map((l) => l.trimEnd());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

async function waitFor(what: string, test: (lines: string[]) => boolean, ms = 60_000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const lines = screen();
    if (test(lines)) return lines;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the screen:\n${lines.join('\n')}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

const prompts = (lines: string[]) => lines.filter((l) => l.startsWith('you>')).length;
// The last line is an empty prompt: the turn is over.
const atPrompt = (n: number) => (lines: string[]) => prompts(lines) >= n && lines[lines.length - 1] === 'you>';

function type(text: string): void {
  tmux('send-keys', '-t', session, '-l', text);
  tmux('send-keys', '-t', session, 'Enter');
}

function chatArgs(): string[] {
  return [main, 'chat', '--model', tinyModelDir, '--max-new-tokens', '12', '--out-dir', work];
}

describe.skipIf(skipReason !== null)(`vargpt chat in a terminal${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(() => {
    execFileSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', path.join(repoRoot, 'tsconfig.json')], { stdio: 'inherit' });
    // One thread and the portable kernels: a drawing on the tiny model lasts long enough (about a
    // second) for Ctrl-C to land in the middle of it.
    const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const command = `VARGPT_THREADS=1 VARGPT_CPU_KERNELS=portable ${[process.execPath, ...chatArgs()].map(quote).join(' ')}; echo "[exit $?]"; sleep 600`;
    tmux('new-session', '-d', '-s', session, '-x', '200', '-y', '50', command);
  });
  afterAll(() => {
    spawnSync('tmux', ['-L', socket, 'kill-server']);
    rmSync(work, { recursive: true, force: true });
  });

  it('streams the reply on its own line, keeps it, draws with a bar that leaves no trace, and Ctrl-C stops a drawing on a clean line', async () => {
    // The same turn with --json (piped stdin) gives the text the screen must show.
    const piped = spawnSync(process.execPath, [...chatArgs(), '--json'], { input: 'hello there\n', encoding: 'utf8', timeout: 120_000 });
    expect(piped.status, piped.stderr).toBe(0);
    const turns = piped.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; stopReason: string; image: string | null });
    expect(turns).toHaveLength(1);
    expect(turns[0]!.image).toBeNull();
    const expected = turns[0]!.text.trim();
    expect(expected.length).toBeGreaterThan(0);

    let lines = await waitFor('the first prompt', atPrompt(1));
    expect(lines.join('\n')).toContain('/draw <text>');

    type('hello there');
    lines = await waitFor('the reply', atPrompt(2));
    const replyLine = lines.findIndex((l) => l.startsWith('vargpt> '));
    expect(replyLine, lines.join('\n')).toBeGreaterThan(0);
    expect(lines[replyLine - 1]).toBe('you> hello there');
    // A reply with a newline of its own spans lines; compare without the breaks.
    const shown = lines.slice(replyLine, lines.length - 1).join('').slice('vargpt> '.length).replace(/\s+/g, '');
    expect(shown).toBe(expected.replace(/\s+/g, ''));

    type('/draw a fox');
    lines = await waitFor('the saved image', atPrompt(3));
    const saved = lines.find((l) => l.startsWith('[image saved to '));
    expect(saved, lines.join('\n')).toBeDefined();
    const file = saved!.slice('[image saved to '.length, -1);
    expect(existsSync(file)).toBe(true);
    expect(lines.join('\n')).not.toMatch(/drawing \[|[█░]/);
    // The first reply is still on screen.
    expect(lines[replyLine]!.startsWith('vargpt> ')).toBe(true);

    type('/draw a cat');
    await waitFor('the drawing bar', (l) => l.some((x) => x.startsWith('drawing [')));
    tmux('send-keys', '-t', session, 'C-c');
    lines = await waitFor('the stopped turn', atPrompt(4));
    expect(lines).toContain('(stopped)');
    expect(lines.join('\n')).not.toMatch(/drawing \[|[█░]/);
    expect(readdirSync(work).filter((f) => f.endsWith('.png'))).toHaveLength(1);

    type('/exit');
    await waitFor('the chat to end', (l) => l.includes('[exit 0]'));
  });
});
