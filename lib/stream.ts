// model.chatStream(): the callbacks of one chat() call as an async iterator of events. Events are
// buffered, so a slow consumer loses nothing; leaving the loop early (break, return, throw)
// aborts the call and waits for the model to become free again.
import type { GeneratedImage } from './image.js';
import type { ChatReply } from './model.js';
import type { ImageProgress } from './options.js';

export type ChatEvent =
  | { type: 'text'; delta: string; tokenId: number }
  | ({ type: 'image-progress' } & ImageProgress)
  | { type: 'image'; image: GeneratedImage }
  | { type: 'end'; reply: ChatReply };

export interface StreamHooks {
  push(event: ChatEvent): void;
  signal: AbortSignal;
}

export class ChatStream {
  constructor(
    private readonly start: (hooks: StreamHooks) => Promise<ChatReply>,
    private readonly outer: AbortSignal | undefined,
  ) {}

  async *iterate(): AsyncGenerator<ChatEvent, void, undefined> {
    const controller = new AbortController();
    const outer = this.outer;
    const onOuter = () => controller.abort(outer?.reason);
    if (outer?.aborted) controller.abort(outer.reason);
    outer?.addEventListener('abort', onOuter, { once: true });
    const events: ChatEvent[] = [];
    let wake: (() => void) | null = null;
    let done = false;
    let failed = false;
    let failure: unknown;
    const push = (event: ChatEvent) => {
      events.push(event);
      wake?.();
    };
    const running = this.start({ push, signal: controller.signal }).then(
      (reply) => {
        for (const image of reply.images) push({ type: 'image', image });
        push({ type: 'end', reply });
        done = true;
        wake?.();
      },
      (error: unknown) => {
        failed = true;
        failure = error;
        done = true;
        wake?.();
      },
    );
    try {
      for (;;) {
        while (events.length > 0) yield events.shift() as ChatEvent;
        if (done) {
          if (failed) throw failure;
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      if (!done) {
        controller.abort();
        await running;
      }
      outer?.removeEventListener('abort', onOuter);
    }
  }
}
