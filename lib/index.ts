// vargpt: the VARGPT family (image understanding and text-to-image) from Node.js.
export { loadModel, VargptModel } from './model.js';
export { DEMO_MODEL_NAME, DEMO_MODEL_SUMMARY, demoModelDir } from './demo-model.js';
export { DEFAULT_SELF_CHECK_CANDIDATES, MAX_SELF_CHECK_CANDIDATES, SELF_CHECK_FILE, candidateSeed, generateImageSelfChecked, loadReadBackCheck, parseReadBackCheck, wantedAnswers } from './self-check.js';
export type { DrawAndRead, ReadBack, ReadBackCheck, ReadBackQuestion, SelfCheckOptions, SelfCheckReport, SelfCheckedImageReply } from './self-check.js';
export type { ChatReply, DecodeImageTokenOptions, Device, ImageReply, ImageTokenOptions, LoadModelOptions, LoadProgress, ModelInfo, StopReason, WeightsPrecision } from './model.js';
export type {
  CallOptions,
  ChatOptions,
  EditImageOptions,
  GenerateImageOptions,
  ImageProgress,
  ImageProgressBase,
  ImageReplay,
  ImageSamplingOptions,
  ScaleSchedule,
  TextOptions,
} from './options.js';
export { FAMILIES, supportedFamilies } from './families/registry.js';
export type { FamilyAdapter, ImageDefaults, SamplingDefaults, TextDefaults } from './families/types.js';
export type { VargptV1ImageProgress, VargptV1ModelInfo } from './families/vargpt-v1.js';
export type { VargptV11ImageProgress, VargptV11ModelInfo } from './families/vargpt-v1.1.js';
export type { Blip3oModelInfo } from './families/blip3o.js';
export { DEFAULT_SCALES as VARGPT_V11_DEFAULT_SCALES } from './families/vargpt-v1.1.js';
export type { ChatEvent } from './stream.js';
export { createServer } from './server/index.js';
export type { ServedModels, ServerOptions, ShutdownOptions, VargptServer } from './server/index.js';
export { devices } from './devices.js';
export type { CpuInfo, CudaInfo, DeviceReport } from './devices.js';
export { synthesize, FAMILY_PRESET_NAMES, PRESETS, PRESET_NAMES, SYNTH_FAMILIES, V11_PRESETS, V11_PRESET_NAMES } from './synth.js';
export type {
  BsqVaeSizes,
  ImageProcessorSizes,
  InfinitySizes,
  ModelSizes,
  PresetName,
  QwenLlmSizes,
  QwenVisionSizes,
  SynthDType,
  SynthFamily,
  SynthesizeOptions,
  SynthesizeResult,
  SynthesizeV1Options,
  SynthesizeV1Result,
  SynthesizeV11Options,
  SynthesizeV11Result,
  V11PresetName,
  V11Sizes,
} from './synth.js';
export { Tensor, DTYPE_BYTES, bf16ToF32, f16ToF32, f32ToBf16, isDType, shapeSize } from './tensor.js';
export { Checkpoint } from './checkpoint.js';
export type { TensorEntry } from './checkpoint.js';
export type { DType, TensorData, TensorDataMap } from './tensor.js';
export { VargptTokenizer, StreamDecoder } from './tokenizer.js';
export type { SpecialToken, SpecialTokens } from './tokenizer.js';
export { ChatTemplate } from './chat-template.js';
export { DEFAULT_IMAGE_LIMITS, GeneratedImage, clipPixelValues, decodeImage, resizeImage, vqvaePixels } from './image.js';
export { parseQwen2VlImageConfig, qwen2VlPixels, smartResize } from './qwen2-vl-image.js';
export type { Qwen2VlImageConfig, Qwen2VlPixels } from './qwen2-vl-image.js';
export type { EncodeOptions, ImageFormat, ImageLimits, RgbImage } from './image.js';
export { AbortError, CheckpointError, DisposedError, InputError, isAbortError } from './errors.js';
export type { ChatMessage, ContentPart, ImageInput, ImagePart, RawImage, Role, TextPart } from './types.js';
export type { LinearWeightsPrecision } from './native.js';
