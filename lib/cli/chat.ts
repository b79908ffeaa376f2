// `vargpt chat`: an interactive conversation on stdin/stdout. Lines are user messages;
// "/image <path>" attaches an image to the next message; drawn images are saved to files and
// their paths printed. Ctrl-C while the model answers stops that answer; at the prompt it exits.
// The reply streams to stdout; a drawing bar (stderr, terminals only) starts on the line after
// the reply's text at the first image-progress event and clears only its own line. With --json,
// stdout carries one JSON object per turn and nothing else (prompt and notices go to stderr).
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { isAbortError } from '../errors.js';
import type { ChatMessage, ContentPart } from '../types.js';
import type { Io, TextCommandOptions } from './commands.js';
import { checkWritableFolder, drawingBar, openModel } from './commands.js';
import type { Progress } from './progress.js';

export interface ChatCommandOptions extends TextCommandOptions {
  outDir?: string;
}

export const CHAT_COMMANDS = [
  '  /image <path>  attach an image to your next message',
  '  /draw <text>   send <text> and have the model draw right away',
  '  /reset         start a new conversation',
  '  /help          this text',
  '  /exit          quit (or Ctrl-D)',
  'Ctrl-C stops the answer or drawing in progress; at the prompt it quits.',
].join('\n');

const HELP = `Type a message and press Enter.\n${CHAT_COMMANDS}`;

// One line of `chat --json` per turn.
export interface ChatTurnJson {
  text: string;
  stopReason: string;
  image: string | null; // the first drawn image's file (VARGPT v1 draws at most one per turn)
  images: string[];
  promptTokens: number;
  seed: number;
}

export async function chatCommand(options: ChatCommandOptions, io: Io, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const outDir = path.resolve(options.outDir ?? '.');
  await checkWritableFolder(outDir, `--out-dir ${options.outDir ?? '.'}`);
  await using model = await openModel(options, io);
  const interactive = (input as { isTTY?: boolean }).isTTY === true;
  const json = options.json === true;
  // Replies, and with --json the JSON lines, go to stdout; notices to stderr when stdout is data.
  const note = json ? io.err : io.out;
  const rl = createInterface({ input, output: interactive ? (json ? process.stderr : process.stdout) : undefined, terminal: interactive });
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
      note(`${HELP}\n`);
      prompt();
      continue;
    }
    if (line === '/reset') {
      messages = [];
      attached = [];
      note('(new conversation)\n');
      prompt();
      continue;
    }
    if (line.startsWith('/image')) {
      const file = line.slice('/image'.length).trim();
      const ok = file && (await access(file).then(() => true, () => false));
      if (!ok) io.err(`vargpt: cannot read image "${file}"\n`);
      else {
        attached.push(path.resolve(file));
        note(`(image attached: ${file})\n`);
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
    // The bar starts with the first image-progress event, on its own line below the text so far,
    // so it never shares (or, when it clears itself, erases) a line of the reply.
    let bar: Progress | null = null;
    let lineOpen = false; // stdout holds reply text not yet ended by a newline
    const write = (text: string) => {
      if (text === '') return;
      io.out(text);
      lineOpen = !text.endsWith('\n');
    };
    const endLine = () => {
      bar?.stop();
      bar = null;
      if (lineOpen) write('\n');
    };
    if (!json) write('vargpt> ');
    try {
      const reply = await model.chat(turn, {
        maxNewTokens: options.maxNewTokens,
        temperature: options.temperature,
        topK: options.topK,
        topP: options.topP,
        seed: options.seed,
        forceImage: draw,
        signal: current.signal,
        onToken: json ? undefined : (delta) => write(delta),
        onImageProgress: (p) => {
          if (!bar) {
            if (lineOpen) write('\n');
            bar = drawingBar(!json, p.steps, p.stage);
          }
          bar.update(p.step, p.steps, { stage: p.stage });
        },
      });
      endLine();
      const files: string[] = [];
      for (const image of reply.images) {
        const file = path.join(outDir, `vargpt-chat-${Date.now()}-${++imageCount}.png`);
        await image.save(file);
        files.push(file);
        if (!json) write(`[image saved to ${file}]\n`);
      }
      if (json) {
        const line: ChatTurnJson = { text: reply.text, stopReason: reply.stopReason, image: files[0] ?? null, images: files, promptTokens: reply.promptTokens, seed: reply.seed };
        write(`${JSON.stringify(line)}\n`);
      }
      messages = [...turn, reply.message];
      attached = [];
    } catch (error) {
      endLine();
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
