// TEST DOUBLE of the native model surface (lib/native.ts NativeModel), for unit tests of the
// TypeScript layer: it does no math. It emits scripted tokens with a small delay per token and
// per image scale, honours the cancel token between steps exactly where the real runtime checks
// it, records every request, and counts concurrent calls so tests can prove calls never overlap.
import type {
  NativeAddon,
  NativeCancelToken,
  NativeGenerateRequest,
  NativeGenerateResult,
  NativeImage,
  NativeModel,
  NativeVargptV1Info,
} from '../../lib/native.js';

export const FIXTURE_INFO: NativeVargptV1Info = {
  family: 'vargpt-v1',
  device: 'cpu',
  llm: { hiddenSize: 64, layers: 2, heads: 4, kvHeads: 4, headDim: 16, intermediateSize: 172, vocabSize: 32064, maxPositions: 4096, weights: 'f32' },
  vision: { hiddenSize: 32, layers: 2, imageSize: 336, patchSize: 14, tokens: 576 },
  var: { depth: 2, width: 128, heads: 2, patchNums: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16], codebookSize: 4096, cvae: 32, weights: 'f32' },
  vqvae: {
    ch: 32,
    chMult: [1, 1, 2, 2, 4],
    numResBlocks: 2,
    zChannels: 32,
    codebookSize: 4096,
    imageSize: 256,
    downsample: 16,
    hasEncoder: true,
    phiCount: 4,
    phiIndex: [0, 0, 1, 1, 1, 2, 2, 3, 3, 3],
  },
  imageTokenId: 32000,
  imageGenStartId: 32002,
  imageGenEndId: 32003,
  eosId: 2,
  bosId: 1,
};

export interface Script {
  // Tokens to emit in order (the loop stops at EOS, at the image start token or at the budget).
  tokens: number[];
  // Milliseconds per token and per image scale.
  delayMs?: number;
}

function abortError(): Error {
  const e = new Error('the operation was aborted');
  e.name = 'AbortError';
  return e;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function cancelToken(): NativeCancelToken {
  let cancelled = false;
  return {
    cancel() {
      cancelled = true;
    },
    get cancelled() {
      return cancelled;
    },
  };
}

export function solidImage(width: number, height: number, seed: number): NativeImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (seed * 31 + i * 7) & 255;
  return { width, height, data };
}

// Without the turn calls, the model's queue runs every call alone through generate() (the path
// maxBatch 1 takes): these tests exercise the queue's order, cancellation and disposal on it.
export type NativeModelWithoutTurns = Omit<NativeModel, 'startTurn' | 'stepTurns' | 'finishTurn'>;

export class FakeNativeModel implements NativeModelWithoutTurns {
  readonly requests: NativeGenerateRequest[] = [];
  active = 0;
  maxActive = 0;
  disposeCalls = 0;
  cancelsSeen = 0;

  constructor(
    private readonly infoValue: NativeVargptV1Info,
    public script: (request: NativeGenerateRequest) => Script,
  ) {}

  info(): NativeVargptV1Info {
    return structuredClone(this.infoValue);
  }

  private enter(): void {
    if (this.disposeCalls > 0) throw new Error('native model used after dispose');
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
  }

  private check(cancel: NativeCancelToken | undefined): void {
    if (cancel?.cancelled) {
      this.cancelsSeen++;
      throw abortError();
    }
  }

  async generate(request: NativeGenerateRequest): Promise<NativeGenerateResult> {
    this.enter();
    this.requests.push(request);
    try {
      const { tokens: scripted, delayMs = 2 } = this.script(request);
      const info = this.infoValue;
      const out: number[] = [];
      const draw = async (): Promise<NativeGenerateResult> => {
        const scales = info.var?.patchNums.length ?? 0;
        for (let si = 0; si < scales; si++) {
          await sleep(delayMs);
          this.check(request.cancel);
          const last = si === scales - 1;
          request.onImageProgress?.('scale', si, scales, last ? solidImage(256, 256, request.image?.seed ?? 0) : solidImage(16, 16, si));
        }
        const after = 2717;
        out.push(after);
        return { tokens: Int32Array.from(out), stopReason: 'image', tokenAfterImageStart: after, image: solidImage(256, 256, request.image?.seed ?? 0) };
      };
      this.check(request.cancel);
      if (request.forceImage) {
        out.push(info.imageGenStartId);
        request.onToken?.(info.imageGenStartId);
        return await draw();
      }
      for (const token of scripted) {
        if (out.length >= request.maxNewTokens) break;
        await sleep(delayMs);
        this.check(request.cancel);
        out.push(token);
        request.onToken?.(token);
        if (token === info.imageGenStartId && info.var) return await draw();
        if (request.stopIds.includes(token)) return { tokens: Int32Array.from(out), stopReason: 'eos' };
      }
      return { tokens: Int32Array.from(out), stopReason: 'length' };
    } finally {
      this.active--;
    }
  }

  async encodeImageTokens(pixels: Float32Array, height: number, width: number): Promise<Int32Array[]> {
    this.enter();
    try {
      await sleep(1);
      let sum = 0;
      for (const v of pixels) sum += v;
      const base = Math.abs(Math.round((sum / (height * width)) * 1000)) % 4096;
      return (this.infoValue.var?.patchNums ?? []).map((pn) => Int32Array.from({ length: pn * pn }, (_, i) => (base + i) % 4096));
    } finally {
      this.active--;
    }
  }

  async decodeImageTokens(indices: Int32Array[]): Promise<NativeImage> {
    this.enter();
    try {
      await sleep(1);
      return solidImage(256, 256, indices[0]?.[0] ?? 0);
    } finally {
      this.active--;
    }
  }

  dispose(): void {
    this.disposeCalls++;
  }
}

export type FakeAddon = Pick<NativeAddon, 'devices' | 'loadModel' | 'createCancelToken'> & { model: FakeNativeModel; loads: number };

export function fakeAddon(info: NativeVargptV1Info = FIXTURE_INFO, script: (r: NativeGenerateRequest) => Script = () => ({ tokens: [450, 2] })): FakeAddon {
  const model = new FakeNativeModel(info, script);
  const addon: FakeAddon = {
    model,
    loads: 0,
    devices: () => ({
      cpu: { threads: 2, model: 'fake', features: [], kernels: 'portable', int8Kernels: 'portable', kernelPaths: ['portable'] },
      cuda: { available: false, reason: 'fake: no CUDA here', devices: [] },
    }),
    createCancelToken: cancelToken,
    async loadModel(_dir, options) {
      addon.loads++;
      for (let i = 1; i <= 4; i++) {
        await sleep(2);
        if (options.cancel?.cancelled) throw abortError();
        options.onProgress?.(i * 25, 100);
      }
      return model as unknown as NativeModel;
    },
  };
  return addon;
}
