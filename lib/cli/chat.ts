// `vargpt chat`: an interactive conversation on stdin/stdout. Lines are user messages;
// "/image <path>" attaches an image to the next message; drawn images are saved to files and
// their paths printed. Ctrl-C while the model answers stops that answer; at the prompt it exits.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { isAbortError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../types.js';
import type { Io, TextCommandOptions } from './commands.js';
import { drawingBar, openModel } from './commands.js';

export interface ChatCommandOptions extends TextCommandOptions {
  outDir?: string;
}

const HELP = [
  'Type a message and press Enter.',
  '  /image <path>  attach an image to your next message',
  '  /draw <text>   send <text> and have the model draw right away',
  '  /reset         start a new conversation',
  '  /help          this text',
  '  /exit          quit (or Ctrl-D)',
].join('\n');

export async function chatCommand(options: ChatCommandOptions, io: Io, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  await using model = await openModel(options, io);
  const outDir = path.resolve(options.outDir ?? '.');
  const interactive = (input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input, output: interactive ? process.stdout : undefined, terminal: interactive });
  let messages: ChatMessage[] = [];
  let attached: string[] = [];
  let imageCount = 0;
  let current: AbortController | null = null;
  rl.on('SIGINT', () => {
    if (current) current.abort();
    else rl.close();
  });
  io.signal.addEventListener('abort', () => current?.abort(), { once: true });
  if (interactive) io.err(`${HELP}\n`);
  const prompt = () => {
    if (interactive) rl.prompt();
  };
  rl.setPrompt('you> ');
  prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === '') {
      prompt();
      continue;
    }
    if (line === '/exit' || line === '/quit') break;
    if (line === '/help') {
      io.out(`${HELP}\n`);
      prompt();
      continue;
    }
    if (line === '/reset') {
      messages = [];
      attached = [];
      io.out('(new conversation)\n');
      prompt();
      continue;
    }
    if (line.startsWith('/image')) {
      const file = line.slice('/image'.length).trim();
      const ok = file && (await access(file).then(() => true, () => false));
      if (!ok) io.err(`vargpt: cannot read image "${file}"\n`);
      else {
        attached.push(path.resolve(file));
        io.out(`(image attached: ${file})\n`);
      }
      prompt();
      continue;
    }
    if (line.startsWith('/') && !line.startsWith('/draw ')) {
      io.err(`vargpt: unknown command ${line.split(' ')[0]}; /help lists them\n`);
      prompt();
      continue;
    }
    const draw = line.startsWith('/draw ');
    const text = draw ? line.slice('/draw '.length).trim() : line;
    const content: ContentPart[] = [...attached.map((image) => ({ type: 'image' as const, image })), { type: 'text', text }];
    const turn: ChatMessage[] = [...messages, { role: 'user', content }];
    current = new AbortController();
    const bar = drawingBar(!options.json);
    let drawing = false;
    io.out('vargpt> ');
    try {
      const reply = await model.chat(turn, {
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        seed: options.seed,
        forceImage: draw,
        signal: current.signal,
        onToken: (delta) => io.out(delta),
        onImageProgress: (p) => {
          if (!drawing) io.out('\n');
          drawing = true;
          bar.update(p.step, p.steps, { stage: p.stage });
        },
      });
      bar.stop();
      io.out('\n');
      for (const image of reply.images) {
        const file = path.join(outDir, `vargpt-chat-${Date.now()}-${++imageCount}.png`);
        await image.save(file);
        io.out(`[image saved to ${file}]\n`);
      }
      messages = [...turn, reply.message];
      attached = [];
    } catch (error) {
      bar.stop();
      io.out('\n');
      if (isAbortError(error)) io.err('(stopped)\n');
      else io.err(`vargpt: ${(error as Error).message}\n`);
      // A failed turn is not kept: the user can fix it (e.g. the image) and send again.
    } finally {
      current = null;
    }
    if (io.signal.aborted) break;
    prompt();
  }
  rl.close();
}
