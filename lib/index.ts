// vargpt: VARGPT v1 (image understanding and text-to-image) from Node.js.
export { loadModel, VargptModel } from './model.js';
export type { ChatReply, Device, ImageReply, LoadModelOptions, LoadProgress, ModelInfo, StopReason } from './model.js';
export type { ChatOptions, GenerateImageOptions, ImageProgress, ImageReplay, ImageSamplingOptions, TextOptions, CallOptions } from './options.js';
export type { ChatEvent } from './stream.js';
export { devices } from './devices.js';
export type { CpuInfo, CudaInfo, DeviceReport } from './devices.js';
export { synthesize, PRESETS, PRESET_NAMES } from './synth.js';
export type { ModelSizes, PresetName, SynthDType, SynthesizeOptions, SynthesizeResult } from './synth.js';
export { Tensor, DTYPE_BYTES, bf16ToF32, f16ToF32, f32ToBf16 } from './tensor.js';
export type { DType, TensorData, TensorDataMap } from './tensor.js';
export { VargptTokenizer, StreamDecoder } from './tokenizer.js';
export type { SpecialToken, SpecialTokens } from './tokenizer.js';
export { ChatTemplate } from './chat-template.js';
export { DEFAULT_IMAGE_LIMITS, GeneratedImage, clipPixelValues, decodeImage, resizeImage, vqvaePixels } from './image.js';
export type { EncodeOptions, ImageFormat, ImageLimits, RgbImage } from './image.js';
export { AbortError, CheckpointError, DisposedError, InputError, isAbortError } from './errors.js';
export type { ChatMessage, ContentPart, ImageInput, ImagePart, RawImage, Role, TextPart } from './types.js';
