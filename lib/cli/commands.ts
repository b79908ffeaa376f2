// The one-shot CLI commands: generate, ask, info, synth. Each writes its answer (or, with --json,
// one JSON document) to stdout and everything else -- progress, notices -- to stderr.
import { constants as fsConstants, readFileSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { devices } from '../devices.js';
import { InputError } from '../errors.js';
import { formatFromPath } from '../image.js';
import type { Device, ImageReply, LoadModelOptions, WeightsPrecision } from '../model.js';
import { loadModel } from '../model.js';
import { quantizeCheckpoint } from '../quantize.js';
import type { QuantizeReport, QuantizedWeights } from '../quantize.js';
import type { VargptModel } from '../model.js';
import type { GenerateImageOptions } from '../options.js';
import type { Blip3oPresetName, SynthDType, SynthesizeOptions, SynthFamily, V11PresetName } from '../synth.js';
import { FAMILY_DEFAULT_DTYPE, synthesize } from '../synth.js';
import { DEFAULT_SELF_CHECK_CANDIDATES, MAX_SELF_CHECK_CANDIDATES, SELF_CHECK_FILE, generateImageSelfChecked, loadReadBackCheck } from '../self-check.js';
import type { SelfCheckReport } from '../self-check.js';
import { defaultModelDir, defaultModelNotice, defaultModelPresent, requireDefaultModel } from './default-model.js';
import { formatBytes, progressBar } from './progress.js';
import type { Progress } from './progress.js';

export interface GlobalOptions {
  model?: string;
  device?: Device;
  json?: boolean;
  kvCache?: 'f32' | 'bf16';
  weights?: WeightsPrecision;
  generatorWeights?: WeightsPrecision;
  mmap?: boolean;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  signal: AbortSignal;
}

export function packageVersion(): string {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

// loadModel's weights option from --weights and --generator-weights.
export function weightsFor(options: { weights?: WeightsPrecision; generatorWeights?: WeightsPrecision }): LoadModelOptions['weights'] {
  const both = options.weights ?? 'auto';
  return options.generatorWeights ? { llm: both, generator: options.generatorWeights } : both;
}

export async function openModel(options: GlobalOptions, io: Io): Promise<VargptModel> {
  let dir = options.model;
  if (!dir) {
    dir = await requireDefaultModel();
    io.err(defaultModelNotice(dir));
  }
  const bar = progressBar('loading', 1, { enabled: !options.json, bytes: true });
  try {
    return await loadModel(dir, {
      device: options.device ?? 'auto',
      kvCache: options.kvCache,
      weights: weightsFor(options),
      mmap: options.mmap,
      signal: io.signal,
      onLoadProgress: ({ loaded, total }) => bar.update(loaded, total),
    });
  } finally {
    bar.stop();
  }
}

// Image progress: step k of K of the family's drawing stage (VARGPT v1: scales).
export function drawingBar(enabled: boolean, steps = 1, stage = 'step'): Progress {
  return progressBar('drawing', steps, { enabled, unit: '{stage}s', payload: { stage } });
}

export interface GenerateCommandOptions extends GlobalOptions {
  output?: string;
  seed?: number;
  cfg?: number;
  topK?: number;
  topP?: number;
  tau?: number;
  scales?: Array<[number, number]>;
  // BLIP3-o
  steps?: number;
  guidance?: number;
  flowSteps?: number;
  flowGuidance?: number;
  width?: number;
  height?: number;
  kvCache?: 'f32' | 'bf16';
}

export interface EditCommandOptions extends GenerateCommandOptions {
  preShrink?: boolean | 'auto';
}

// "1,2,4,8" (square grids) or "1x1,2x3,..." (height x width): a scale schedule in tokens.
export function parseScales(value: string): Array<[number, number]> {
  const out = value.split(',').map((item) => {
    const m = /^\s*(\d+)(?:\s*x\s*(\d+))?\s*$/.exec(item);
    if (!m) throw new InputError(`--scales: "${item}" is not N or HxW`);
    const h = Number(m[1]);
    return [h, m[2] === undefined ? h : Number(m[2])] as [number, number];
  });
  if (out.length === 0) throw new InputError('--scales: no scales given');
  return out;
}

export interface GenerateOnlyOptions extends GenerateCommandOptions {
  candidates?: number;
}

export async function generateCommand(prompt: string, options: GenerateOnlyOptions, io: Io): Promise<void> {
  const check = await loadReadBackCheck(options.model ?? defaultModelDir());
  const candidates = options.candidates ?? (check ? DEFAULT_SELF_CHECK_CANDIDATES : 1);
  if (candidates > MAX_SELF_CHECK_CANDIDATES) throw new InputError(`--candidates: candidates must be an integer from 1 to ${MAX_SELF_CHECK_CANDIDATES}, got ${candidates}`);
  if (candidates > 1 && !check) {
    throw new InputError(`--candidates ${candidates}: the model folder has no ${SELF_CHECK_FILE} saying what to ask of a drawing`);
  }
  await drawCommand(options, io, (model, draw) =>
    check && candidates > 1 ? generateImageSelfChecked(model, prompt, { ...draw, candidates, check }) : model.generateImage(prompt, draw),
  );
}

// Draws `image` changed as `instruction` asks (VARGPT-v1.1 -edit checkpoints).
export async function editCommand(image: string, instruction: string, options: EditCommandOptions, io: Io): Promise<void> {
  await access(image).catch(() => {
    throw new Error(`cannot read the image ${image}`);
  });
  await drawCommand(options, io, (model, draw) => model.editImage(image, instruction, { ...draw, preShrink: options.preShrink }));
}

// Draws from an image with the family's reconstruction prompt (BLIP3-o).
export async function reconstructCommand(image: string, options: GenerateCommandOptions, io: Io): Promise<void> {
  await access(image).catch(() => {
    throw new Error(`cannot read the image ${image}`);
  });
  await drawCommand(options, io, (model, draw) => model.reconstructImage(image, draw));
}

// Checks that files can be written into `dir` before any work starts, so a typo in -o or
// --out-dir fails at once rather than after the model has drawn.
export async function checkWritableFolder(dir: string, what: string): Promise<void> {
  const info = await stat(dir).catch((error: NodeJS.ErrnoException) => {
    throw new InputError(`${what}: ${error.code === 'ENOENT' ? `the folder ${dir} does not exist` : `cannot use the folder ${dir}: ${error.message}`}`);
  });
  if (!info.isDirectory()) throw new InputError(`${what}: ${dir} is not a folder`);
  await access(dir, fsConstants.W_OK).catch(() => {
    throw new InputError(`${what}: the folder ${dir} is not writable`);
  });
}

async function drawCommand(
  options: GenerateCommandOptions,
  io: Io,
  call: (model: VargptModel, draw: GenerateImageOptions) => Promise<ImageReply & { selfCheck?: SelfCheckReport }>,
): Promise<void> {
  if (options.output) {
    formatFromPath(options.output);
    await checkWritableFolder(path.dirname(path.resolve(options.output)), `-o ${options.output}`);
  }
  await using model = await openModel(options, io);
  const bar = drawingBar(!options.json);
  const t0 = performance.now();
  let reply;
  try {
    reply = await call(model, {
      seed: options.seed,
      cfg: options.cfg,
      topK: options.topK,
      topP: options.topP,
      tau: options.tau,
      scales: options.scales,
      steps: options.steps,
      guidance: options.guidance,
      flowSteps: options.flowSteps,
      flowGuidance: options.flowGuidance,
      width: options.width,
      height: options.height,
      signal: io.signal,
      onImageProgress: (p) => bar.update(p.step, p.steps, { stage: p.stage }),
    });
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const output = path.resolve(options.output ?? `vargpt-${reply.seed}.png`);
  await reply.image.save(output);
  if (options.json) {
    io.out(
      `${JSON.stringify({
        output,
        width: reply.image.width,
        height: reply.image.height,
        seed: reply.seed,
        promptTokens: reply.promptTokens,
        tokens: Array.from(reply.tokens),
        tokenAfterImageStart: reply.tokenAfterImageStart,
        seconds,
        ...(reply.selfCheck ? { selfCheck: reply.selfCheck } : {}),
      })}\n`,
    );
  } else {
    io.out(`${output}\n`);
    io.err(`vargpt: ${reply.image.width}x${reply.image.height}, seed ${reply.seed}, ${seconds.toFixed(2)} s${reply.selfCheck ? `; ${describeSelfCheck(reply.selfCheck)}` : ''}\n`);
  }
}

function describeSelfCheck(report: SelfCheckReport): string {
  const read = report.readings[report.kept] ?? [];
  if (read.length === 0) return 'the prompt names nothing the self-check asks about, so it was drawn once';
  const answers = read.map((r) => r.answer).join(', ');
  return report.passed
    ? `read back by the model as ${answers} (drawing ${report.kept + 1} of up to ${report.candidates}; --candidates 1 turns the check off)`
    : `no drawing of ${report.drawn} read back as asked; kept drawing ${report.kept + 1}, read as ${answers}`;
}

export interface TextCommandOptions extends GlobalOptions {
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

export async function askCommand(image: string, question: string, options: TextCommandOptions, io: Io): Promise<void> {
  await access(image).catch(() => {
    throw new Error(`cannot read the image ${image}`);
  });
  await using model = await openModel(options, io);
  // With --json the answer comes at the end, so a bar (tokens, tokens/s) shows progress; without,
  // the streamed text is the progress and a summary line follows.
  const bar = progressBar('answering', options.maxNewTokens ?? model.defaults.text.maxNewTokens, { enabled: !!options.json, unit: 'tokens', extra: ' {rate} tok/s' });
  const t0 = performance.now();
  let firstToken = 0;
  let count = 0;
  let reply;
  try {
    reply = await model.ask(image, question, {
      maxNewTokens: options.maxNewTokens,
      temperature: options.temperature,
      topK: options.topK,
      topP: options.topP,
      seed: options.seed,
      signal: io.signal,
      onToken: (delta) => {
        if (count++ === 0) firstToken = performance.now();
        const rate = count > 1 ? ((count - 1) / ((performance.now() - firstToken) / 1000)).toFixed(1) : '-';
        bar.update(count, undefined, { rate });
        if (!options.json) io.out(delta);
      },
    });
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const decodeSeconds = firstToken ? (performance.now() - firstToken) / 1000 : 0;
  const tokensPerSecond = reply.tokens.length > 1 && decodeSeconds > 0 ? (reply.tokens.length - 1) / decodeSeconds : null;
  if (options.json) {
    io.out(
      `${JSON.stringify({
        text: reply.text,
        tokens: Array.from(reply.tokens),
        stopReason: reply.stopReason,
        promptTokens: reply.promptTokens,
        seed: reply.seed,
        seconds,
        tokensPerSecond,
      })}\n`,
    );
  } else {
    io.out('\n');
    if (process.stderr.isTTY) {
      io.err(`vargpt: ${reply.tokens.length} tokens (${reply.stopReason}), ${tokensPerSecond ? `${tokensPerSecond.toFixed(1)} tokens/s` : ''}\n`);
    }
  }
}

export async function infoCommand(options: GlobalOptions, io: Io): Promise<void> {
  const report = devices();
  const dir = options.model ?? defaultModelDir();
  const present = options.model ? null : await defaultModelPresent(dir);
  if (options.json) {
    io.out(`${JSON.stringify({ version: packageVersion(), node: process.version, ...report, defaultModel: { dir: defaultModelDir(), present } })}\n`);
    return;
  }
  const { cpu, cuda } = report;
  const lines = [
    `vargpt ${packageVersion()} (Node ${process.version}, ${process.platform}-${process.arch})`,
    `cpu: ${cpu.model}, ${cpu.threads} threads`,
    `  SIMD: ${cpu.features.length ? cpu.features.join(' ') : 'none detected'}`,
    `  kernels: ${cpu.kernels} (this machine can run: ${cpu.kernelPaths.join(', ')}); int8/q4 weights: ${cpu.int8Kernels}`,
  ];
  if (cpu.amxUnavailable && cpu.features.includes('amx-bf16')) lines.push(`  amx: unavailable: ${cpu.amxUnavailable}`);
  if (cuda.available) {
    const versions = [cuda.driverVersion && `driver ${cuda.driverVersion}`, cuda.runtimeVersion && `runtime ${cuda.runtimeVersion}`].filter(Boolean).join(', ');
    lines.push(`cuda: available${versions ? ` (${versions})` : ''}`);
    for (const d of cuda.devices) {
      lines.push(`  cuda:${d.index} ${d.name}, compute ${d.computeCapability}, ${formatBytes(d.totalMemory)} (${formatBytes(d.freeMemory)} free), ${d.multiprocessors} SMs`);
    }
  } else {
    lines.push(`cuda: unavailable: ${cuda.reason ?? 'no reason given'}`);
  }
  lines.push(`default model: ${defaultModelDir()} (${present === false ? 'missing from this install' : 'the built-in demo model'})`);
  io.out(`${lines.join('\n')}\n`);
}

export interface SynthCommandOptions {
  family?: SynthFamily; // default vargpt-v1
  preset: string;
  out: string;
  dtype?: SynthDType;
  seed?: number;
  varDepth?: number;
  maxShardBytes?: number;
  force?: boolean;
  json?: boolean;
}

export async function synthCommand(options: SynthCommandOptions, io: Io): Promise<void> {
  const family = options.family ?? 'vargpt-v1';
  if (family !== 'vargpt-v1' && options.varDepth !== undefined) throw new InputError(`--var-depth applies to --family vargpt-v1 only, not ${family}`);
  const bar = progressBar('writing', 1, { enabled: !options.json, bytes: true });
  const t0 = performance.now();
  const dtype = options.dtype ?? FAMILY_DEFAULT_DTYPE[family];
  const common = {
    out: options.out,
    dtype,
    seed: options.seed ?? 0,
    maxShardBytes: options.maxShardBytes,
    overwrite: options.force ?? false,
    signal: io.signal,
    onProgress: ({ bytes, totalBytes }: { bytes: number; totalBytes: number }) => bar.update(bytes, totalBytes),
  };
  // synthesize() checks the preset against the family's list.
  const request: SynthesizeOptions =
    family === 'vargpt-v1.1'
      ? { ...common, family, preset: options.preset as V11PresetName }
      : family === 'blip3o'
        ? { ...common, family, preset: options.preset as Blip3oPresetName }
        : { ...common, family, preset: options.preset, varDepth: options.varDepth };
  let result;
  try {
    result = await synthesize(request);
  } finally {
    bar.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  if (options.json) {
    io.out(`${JSON.stringify({ ...result, dtype, seed: options.seed ?? 0, seconds })}\n`);
  } else {
    const params = result.parameters >= 1e9 ? `${(result.parameters / 1e9).toFixed(2)}B` : `${(result.parameters / 1e6).toFixed(1)}M`;
    io.out(`${result.dir}\n`);
    io.err(`vargpt: ${params} parameters, ${result.tensors} tensors, ${formatBytes(result.bytes)} (${dtype}) in ${seconds.toFixed(1)} s\n`);
  }
}

export interface QuantizeCommandOptions {
  model: string;
  out: string;
  weights: QuantizedWeights;
  json?: boolean;
}

// `vargpt quantize`: writes the checkpoint with its LLM and image-generator linear layers stored quantized.
export async function quantizeCommand(options: QuantizeCommandOptions, io: Io): Promise<void> {
  const bar = progressBar('quantizing', 1, { enabled: !options.json });
  let report: QuantizeReport;
  try {
    report = await quantizeCheckpoint({
      model: options.model,
      out: options.out,
      weights: options.weights,
      signal: io.signal,
      onProgress: ({ done, total }) => bar.update(done, total),
    });
  } finally {
    bar.stop();
  }
  if (options.json) {
    io.out(`${JSON.stringify({ out: path.resolve(options.out), weights: options.weights, ...report })}\n`);
    return;
  }
  const gb = (b: number) => `${(b / 1e9).toFixed(3)} GB`;
  io.out(`wrote ${path.resolve(options.out)}: ${report.llmLayers} LLM and ${report.generatorLayers} image-generator linear layers as ${options.weights}, ${report.tensors - report.quantized} tensors copied; ${gb(report.bytesIn)} -> ${gb(report.bytesOut)}\n`);
}
