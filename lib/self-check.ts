// Drawing checked by the model's own reading: a unified model both draws and reads, so it can
// read each drawing back ("what colour is the shape?") and draw again when the answer is not what
// the request asked for. Up to `candidates` drawings, with seeds candidateSeed(seed, k); the first
// whose every applicable answer matches the request is kept, so a caller can reproduce it with a
// plain generateImage() and the reply's seed.
//
// A model folder can carry the questions to ask in self_check.json (the built-in demo model does):
//   { "questions": [ { "question": "what colour is the shape?", "answers": ["red", ...] }, ... ] }
// A question applies to a request when exactly one of its answers appears in the request as a
// whole word; that word is the answer wanted, and the model's greedy answer (lower-cased, a final
// full stop dropped) must be exactly it. Requests that name none are drawn once.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { CheckpointError, InputError } from './errors.js';
import type { ImageReply, VargptModel } from './model.js';
import type { GenerateImageOptions } from './options.js';

export const SELF_CHECK_FILE = 'self_check.json';
export const MAX_SELF_CHECK_CANDIDATES = 64;
export const DEFAULT_SELF_CHECK_CANDIDATES = 4;

export interface ReadBackQuestion {
  question: string;
  // Every answer the model may give; lower-case words.
  answers: readonly string[];
}

export interface ReadBackCheck {
  questions: readonly ReadBackQuestion[];
}

export interface ReadBack {
  question: string;
  wanted: string;
  answer: string;
}

export interface SelfCheckReport {
  // Which drawing was kept (0-based) and how many were drawn.
  kept: number;
  drawn: number;
  candidates: number;
  // Whether the kept drawing read back as requested; when none did, the one with the most
  // matching answers (the earliest among equals) is kept.
  passed: boolean;
  // Per drawing, the questions asked and what the model answered.
  readings: ReadBack[][];
}

export interface SelfCheckedImageReply extends ImageReply {
  selfCheck: SelfCheckReport;
}

export interface SelfCheckOptions extends GenerateImageOptions {
  // Drawings to try at most (1 to MAX_SELF_CHECK_CANDIDATES; default DEFAULT_SELF_CHECK_CANDIDATES).
  candidates?: number;
  check: ReadBackCheck;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

export function parseReadBackCheck(value: unknown, what: string): ReadBackCheck {
  const questions = (value as { questions?: unknown } | null)?.questions;
  if (!Array.isArray(questions) || questions.length === 0) throw new CheckpointError(`${what}: "questions" must be a non-empty array`);
  return {
    questions: questions.map((q: unknown, i) => {
      const { question, answers } = (q ?? {}) as { question?: unknown; answers?: unknown };
      if (typeof question !== 'string' || question.trim() === '') throw new CheckpointError(`${what}: questions[${i}].question must be a non-empty string`);
      if (!isStringArray(answers) || answers.length === 0 || answers.some((a) => !/^[a-z][a-z-]*$/.test(a))) {
        throw new CheckpointError(`${what}: questions[${i}].answers must be a non-empty array of lower-case words`);
      }
      return { question, answers };
    }),
  };
}

// The model folder's self_check.json, or null where it has none.
export async function loadReadBackCheck(modelDir: string): Promise<ReadBackCheck | null> {
  const file = path.join(modelDir, SELF_CHECK_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CheckpointError(`cannot read ${file}: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CheckpointError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseReadBackCheck(json, file);
}

// The questions that apply to `prompt`, each with the one answer it names.
export function wantedAnswers(prompt: string, check: ReadBackCheck): Array<{ question: string; wanted: string }> {
  const words = new Set(prompt.toLowerCase().split(/[^a-z-]+/).filter((w) => w.length > 0));
  const out: Array<{ question: string; wanted: string }> = [];
  for (const q of check.questions) {
    const named = q.answers.filter((a) => words.has(a));
    const [only] = named;
    if (named.length === 1 && only !== undefined) out.push({ question: q.question, wanted: only });
  }
  return out;
}

// A one-word answer is asked for; a final full stop or exclamation mark and the case do not count.
const MAX_ANSWER_TOKENS = 16;
function normalizeAnswer(text: string): string {
  return text.trim().replace(/[.!]+$/, '').trim().toLowerCase();
}

// Drawing k's seed, from the first drawing's (the caller's, or the one drawn for the call). A
// stride of 2654435761 (not 1) keeps neighbouring first seeds from sharing later drawings, so
// seeds 4 and 5 do not both end on seed 6's picture.
export function candidateSeed(firstSeed: number, k: number): number {
  return (firstSeed + k * 2654435761) % 2 ** 48;
}

// Only drawing and asking are used, so anything that draws and reads as a VargptModel does (a
// wrapper that times or logs the calls, as bench/self-check.mjs uses) can be checked.
export type DrawAndRead = Pick<VargptModel, 'generateImage' | 'ask'>;

export async function generateImageSelfChecked(model: DrawAndRead, prompt: string, options: SelfCheckOptions): Promise<SelfCheckedImageReply> {
  const { candidates = DEFAULT_SELF_CHECK_CANDIDATES, check, ...draw } = options;
  if (!Number.isInteger(candidates) || candidates < 1 || candidates > MAX_SELF_CHECK_CANDIDATES) {
    throw new InputError(`candidates must be an integer from 1 to ${MAX_SELF_CHECK_CANDIDATES}, got ${String(candidates)}`);
  }
  let parsed: ReadBackCheck;
  try {
    parsed = parseReadBackCheck(check, 'options.check');
  } catch (error) {
    // The caller's argument, not a checkpoint file, is what is malformed here.
    throw new InputError((error as Error).message);
  }
  const wanted = wantedAnswers(prompt, parsed);
  const first = await model.generateImage(prompt, draw);
  const readings: ReadBack[][] = [];
  let best = { index: 0, reply: first, matches: -1 };
  let reply = first;
  for (let k = 0; ; k += 1) {
    const reads: ReadBack[] = [];
    for (const { question, wanted: want } of wanted) {
      // Greedy answers, whatever the caller's drawing options: the check should be the model's
      // most likely reading, not a sample of it.
      const answer = normalizeAnswer((await model.ask(reply.image, question, { signal: draw.signal, temperature: 0, maxNewTokens: MAX_ANSWER_TOKENS })).text);
      reads.push({ question, wanted: want, answer });
    }
    readings.push(reads);
    const matches = reads.filter((r) => r.answer === r.wanted).length;
    if (matches > best.matches) best = { index: k, reply, matches };
    if (matches === wanted.length || k + 1 === candidates) break;
    reply = await model.generateImage(prompt, { ...draw, seed: candidateSeed(first.seed, k + 1) });
  }
  return {
    ...best.reply,
    selfCheck: {
      kept: best.index,
      drawn: readings.length,
      candidates,
      passed: best.matches === wanted.length,
      readings,
    },
  };
}
