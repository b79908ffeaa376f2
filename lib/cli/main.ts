#!/usr/bin/env node
// The `vargpt` command.
import { Command, InvalidArgumentError, Option } from 'commander';

import { isAbortError } from '../errors.js';
import { FAMILIES } from '../families/registry.js';
import type { DiffusionImageDefaults, ImageDefaults, SamplingDefaults } from '../families/types.js';
import { isDiffusionDefaults } from '../families/types.js';
import { DEFAULT_SELF_CHECK_CANDIDATES, SELF_CHECK_FILE } from '../self-check.js';
import { FAMILY_PRESET_NAMES, SYNTH_FAMILIES } from '../synth.js';
import type { SynthDType, SynthFamily } from '../synth.js';
import { CHAT_COMMANDS, chatCommand } from './chat.js';
import type { ChatCommandOptions } from './chat.js';
import { serveCommand } from './serve.js';
import type { ServeCommandOptions } from './serve.js';
import { quantizeCommand } from './commands.js';
import type { QuantizeCommandOptions } from './commands.js';
import { askCommand, editCommand, generateCommand, infoCommand, packageVersion, parseScales, reconstructCommand, synthCommand } from './commands.js';
import type { EditCommandOptions, GenerateCommandOptions, GenerateOnlyOptions, GlobalOptions, Io, SynthCommandOptions, TextCommandOptions } from './commands.js';

function integer(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return n;
  };
}

function decimal(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

// Option defaults belong to the model (its family's table, seeded from the checkpoint's
// generation_config.json): the help names each family's value.
function varImage(d: SamplingDefaults): ImageDefaults | null {
  return d.image && !isDiffusionDefaults(d.image) ? d.image : null;
}

function diffusionImage(d: SamplingDefaults): DiffusionImageDefaults | null {
  return isDiffusionDefaults(d.image) ? d.image : null;
}

function modelDefault(pick: (defaults: SamplingDefaults) => number | null | undefined): string {
  const values = FAMILIES.flatMap((f) => {
    const value = pick(f.specDefaults);
    return value === undefined || value === null ? [] : [`${f.title}: ${value}`];
  });
  return `model default${values.length ? `; ${values.join(', ')}` : ''}`;
}

// Ctrl-C stops the work in progress (the model call aborts at the next token or scale and the
// process exits cleanly); a second Ctrl-C exits at once.
function makeIo(): Io {
  const controller = new AbortController();
  let interrupts = 0;
  process.on('SIGINT', () => {
    if (++interrupts > 1) process.exit(130);
    controller.abort();
  });
  return {
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    signal: controller.signal,
  };
}

async function run(task: (io: Io) => Promise<void>): Promise<void> {
  const io = makeIo();
  try {
    await task(io);
  } catch (error) {
    if (isAbortError(error)) {
      io.err('vargpt: stopped\n');
      process.exitCode = 130;
    } else {
      io.err(`vargpt: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}

const program = new Command();
program
  .name('vargpt')
  .description(`${FAMILIES.map((f) => f.title).join(', ')} in Node.js: ask about images, draw images from text`)
  .version(packageVersion())
  .showHelpAfterError();

const PRECISIONS = ['auto', 'f32', 'bf16', 'int8', 'q4'];
const WEIGHTS_HELP = 'the linear layers of the LLM and the image generator: auto (as stored), f32 or bf16 (converted), int8 or q4 (quantized on load: 1 or 0.56 byte per weight)';
const GENERATOR_WEIGHTS_HELP = 'the image generator\'s linear layers alone (default: as --weights)';

function withModel(cmd: Command): Command {
  return cmd
    .option('-m, --model <dir>', 'checkpoint folder (default: the built-in demo model, trained on synthetic shapes)')
    .addOption(new Option('-d, --device <device>', 'auto, cpu, cuda or cuda:N').default('auto'))
    .addOption(new Option('--kv-cache <dtype>', 'precision of the attention caches (bf16: half the memory)').choices(['f32', 'bf16']).default('f32'))
    .addOption(new Option('--weights <precision>', WEIGHTS_HELP).choices(PRECISIONS).default('auto'))
    .addOption(new Option('--generator-weights <precision>', GENERATOR_WEIGHTS_HELP).choices(PRECISIONS))
    .option('--no-mmap', 'copy the weights into memory on load instead of reading the mapped files in place (faster decoding on the CPU, unshared memory)')
    .option('--json', 'print one JSON document with the result');
}

function scales(value: string): Array<[number, number]> {
  try {
    return parseScales(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

// The drawing options of generate and edit.
function withDrawing(cmd: Command): Command {
  return cmd
    .option('-o, --output <file>', 'output image (.png, .jpg, .webp); default vargpt-<seed>.png')
    .option('--seed <n>', 'random seed (default: random, printed)', integer(0))
    .option('--cfg <x>', `classifier-free guidance (${modelDefault((d) => varImage(d)?.cfg)})`, decimal)
    .option('--top-k <k>', `top-k over the codebook / each bit (${modelDefault((d) => varImage(d)?.topK)})`, integer(1))
    .option('--top-p <p>', `top-p over the codebook / each bit (${modelDefault((d) => varImage(d)?.topP)})`, decimal)
    .option('--tau <t>', `VARGPT-v1.1 logits temperature (${modelDefault((d) => varImage(d)?.tau)})`, decimal)
    .option('--scales <list>', 'VARGPT-v1.1 scale schedule in tokens, "1,2,4,...,32" or "HxW,..." (default: 10 scales to 32x32, 512x512 pixels)', scales)
    .option('--steps <n>', `BLIP3-o UNet (Euler) steps (${modelDefault((d) => diffusionImage(d)?.steps)})`, integer(1))
    .option('--guidance <x>', `BLIP3-o UNet guidance scale (${modelDefault((d) => diffusionImage(d)?.guidance)})`, decimal)
    .option('--flow-steps <n>', `BLIP3-o DiT flow-matching steps (${modelDefault((d) => diffusionImage(d)?.flowSteps)})`, integer(1))
    .option('--flow-guidance <x>', `BLIP3-o DiT guidance scale (${modelDefault((d) => diffusionImage(d)?.flowGuidance)})`, decimal)
    .option('--width <px>', 'BLIP3-o image width (default: the checkpoint\'s, 1024 in the release)', integer(1))
    .option('--height <px>', 'BLIP3-o image height (default: the checkpoint\'s)', integer(1));
}

function withText(cmd: Command): Command {
  return cmd
    .option('--max-new-tokens <n>', `upper bound on new tokens (${modelDefault((d) => d.text.maxNewTokens)})`, integer(1))
    .option('--temperature <t>', `0 = greedy (${modelDefault((d) => d.text.temperature)})`, decimal)
    .option('--top-k <k>', `text top-k, 0 = off (${modelDefault((d) => d.text.topK)})`, integer(0))
    .option('--top-p <p>', `text top-p, 1 = off (${modelDefault((d) => d.text.topP)})`, decimal)
    .option('--seed <n>', 'random seed', integer(0));
}

withDrawing(
  withModel(program.command('generate').description('draw an image from a prompt').argument('<prompt>', 'what to draw')),
)
  .option(
    '--candidates <n>',
    `draw up to n pictures, ask the model about each (the model folder's ${SELF_CHECK_FILE}) and keep the first it reads back as ` +
      `requested (default: ${DEFAULT_SELF_CHECK_CANDIDATES} where the folder has that file, as the built-in demo model does; else 1)`,
    integer(1),
  )
  .action((prompt: string, options: GenerateOnlyOptions) => run((io) => generateCommand(prompt, options, io)));

withDrawing(
  withModel(
    program
      .command('edit')
      .description('draw an edited version of an image (VARGPT-v1.1 -edit checkpoints)')
      .argument('<image>', 'the image to edit')
      .argument('<instruction>', 'what to change')
      .addOption(
        new Option('--pre-shrink <when>', 'shrink the source to at most 512x512 pixels first, as the editing data was: auto (when the prompt would not fit otherwise), always, never')
          .choices(['auto', 'always', 'never'])
          .default('auto'),
      ),
  ),
).action((image: string, instruction: string, options: Omit<EditCommandOptions, 'preShrink'> & { preShrink: 'auto' | 'always' | 'never' }) =>
  run((io) => editCommand(image, instruction, { ...options, preShrink: options.preShrink === 'auto' ? 'auto' : options.preShrink === 'always' }, io)),
);

withDrawing(
  withModel(
    program
      .command('reconstruct')
      .description('draw from an image with the reconstruction prompt (BLIP3-o)')
      .argument('<image>', 'the image to reconstruct'),
  ),
).action((image: string, options: GenerateCommandOptions) => run((io) => reconstructCommand(image, options, io)));

withText(
  withModel(
    program
      .command('ask')
      .description('ask a question about an image')
      .argument('<image>', 'image file')
      .argument('<question>', 'the question'),
  ),
).action((image: string, question: string, options: TextCommandOptions) => run((io) => askCommand(image, question, options, io)));

withText(
  withModel(
    program
      .command('chat')
      .description('interactive chat; /draw <text> has the model draw, /image <path> attaches an image')
      .option('--out-dir <dir>', 'where drawn images are saved (default: current folder)')
      .addHelpText('after', `\nIn the chat, type a message and press Enter, or:\n${CHAT_COMMANDS}\nWith --json, each turn prints one line: {"text","stopReason","image","images","promptTokens","seed"}.`),
  ),
).action((options: ChatCommandOptions) => run((io) => chatCommand(options, io)));

program
  .command('serve')
  .description('serve the models over an OpenAI-compatible HTTP API (chat, images, edits, /metrics)')
  .option('-m, --model <[name=]dir>', 'checkpoint folder, named by its basename or NAME=DIR; repeat to serve several', (value: string, list: string[]) => [...list, value], [] as string[])
  .addOption(new Option('-d, --device <device>', 'auto, cpu, cuda or cuda:N').default('auto'))
  .addOption(new Option('--kv-cache <dtype>', 'precision of the attention caches (bf16: half the memory)').choices(['f32', 'bf16']).default('f32'))
  .addOption(new Option('--weights <precision>', WEIGHTS_HELP).choices(PRECISIONS).default('auto'))
  .addOption(new Option('--generator-weights <precision>', GENERATOR_WEIGHTS_HELP).choices(PRECISIONS))
  .option('--no-mmap', 'copy the weights into memory on load instead of reading the mapped files in place (faster decoding on the CPU, unshared memory)')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <n>', 'port (0: any free port)', integer(0), 8080)
  .option('--max-queue <n>', 'requests that may wait per model before new ones get 429', integer(0), 16)
  .option('--max-batch <n>', 'requests per model that decode together, one forward pass per token (1..8; 1: one at a time)', integer(1), 8)
  .option('--api-key <key>', 'require Authorization: Bearer <key> (default: $VARGPT_API_KEY)')
  .option('--timeout-s <n>', 'longest a request may take, waiting included (504 past it)', integer(1), 600)
  .option('--grace-s <n>', 'on SIGTERM or Ctrl-C, how long in-flight requests may finish', integer(0), 30)
  .option('--allow-remote-images <hosts>', 'comma-separated hosts whose http(s) image URLs are fetched', (value: string) =>
    value
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean),
  )
  .action((options: ServeCommandOptions) => run((io) => serveCommand(options, io)));

program
  .command('info')
  .description('devices: CPU threads, SIMD and kernels; CUDA devices or why CUDA is unavailable')
  .option('--json', 'print JSON')
  .action((options: GlobalOptions) => run((io) => infoCommand(options, io)));

program
  .command('synth')
  .description('write a random-weight checkpoint of a model family in the released layout')
  .addOption(new Option('--family <family>', 'model family').choices(SYNTH_FAMILIES).default('vargpt-v1'))
  .requiredOption(
    '--preset <preset>',
    `vargpt-v1: ${FAMILY_PRESET_NAMES['vargpt-v1'].join(', ')} or a config.json path; vargpt-v1.1: ${FAMILY_PRESET_NAMES['vargpt-v1.1'].join(', ')}; blip3o: ${FAMILY_PRESET_NAMES.blip3o.join(', ')}`,
  )
  .requiredOption('--out <dir>', 'output folder (must be empty or absent)')
  .addOption(new Option('--dtype <dtype>', 'stored dtype (default: f32; bf16 for blip3o, as released)').choices(['f32', 'bf16', 'f16']))
  .option('--seed <n>', 'random seed', integer(0), 0)
  .option('--var-depth <n>', 'VAR depth override (width 64*depth; vargpt-v1 only)', integer(1))
  .option('--max-shard-size <bytes>', 'shard above this many bytes (default 2e9; blip3o 5e9, its tiny preset 5e6)', integer(1))
  .option('-f, --force', 'replace a non-empty output folder')
  .option('--json', 'print JSON')
  .action((options: SynthCommandOptions & { dtype?: SynthDType; family: SynthFamily; maxShardSize?: number }) =>
    run((io) => synthCommand({ ...options, maxShardBytes: options.maxShardSize }, io)),
  );

program
  .command('quantize')
  .description('write a copy of a checkpoint with the LLM linear layers stored as int8 or q4 (loads with no float copy)')
  .requiredOption('-m, --model <dir>', 'checkpoint folder')
  .requiredOption('--out <dir>', 'output folder (must be empty or absent)')
  .addOption(new Option('--weights <precision>', 'int8 (per output channel) or q4 (groups of 32, f16 scales)').choices(['int8', 'q4']).makeOptionMandatory())
  .option('--json', 'print JSON')
  .action((options: QuantizeCommandOptions) => run((io) => quantizeCommand(options, io)));

await program.parseAsync(process.argv);
