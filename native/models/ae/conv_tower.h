// The convolutional encoder / decoder towers of taming-style autoencoders (VQGAN, VAR's
// multi-scale VQ-VAE, Infinity's BSQ VAE) and of diffusers' AutoencoderKL (the SDXL VAE), which has
// the same layout under other tensor names:
// conv_in, levels of GroupNorm(32)-SiLU-conv resnet blocks with optional single-head attention,
// stride-2 downsampling (encoder) or nearest-2x upsampling (decoder), a middle block pair around
// attention, then GroupNorm-SiLU-conv_out.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../../core/error.h"
#include "../common/trace.h"
#include "../common/weights.h"

namespace vargpt {

// Suffixes between a module's name and ".weight" / ".bias": VQGAN stores "conv_in.weight", the
// BSQ VAE wraps every conv and norm in a module of its own ("conv_in.conv.weight",
// "norm1.norm.weight").
struct ConvTowerNames {
  std::string conv;
  std::string norm;
};

// GroupNorm group counts to try, first one that divides the channels: taming's Normalize is
// always 32 groups; the BSQ VAE's falls back to 24 for channel counts 32 does not divide.
struct ConvTowerGroups {
  std::vector<int> choices{32};
  int for_channels(int64_t channels) const;  // throws when none divides
};

// Tensor naming: taming's (down.N / up.N with .block.J, mid.block_1, a fused qkv 1x1 conv) or
// diffusers' (down_blocks.N / up_blocks.N with .resnets.J, mid_block.resnets.J, separate
// to_q / to_k / to_v / to_out.0 linears). Diffusers numbers decoder levels from the innermost, so
// taming's up.i is up_blocks.(levels - 1 - i).
enum class ConvTowerLayout : uint8_t { Taming, Diffusers };

struct ConvTowerConfig {
  int ch = 0;                 // base channels; level i has ch * ch_mult[i]
  std::vector<int> ch_mult;
  int blocks = 0;             // resnet blocks per level
  std::vector<bool> attn;     // attention after each block of that level
  bool mid_attn = false;
  int in_channels = 0, out_channels = 0;  // encoder: image -> latent; decoder: latent -> image
  // Which levels resample (downsample.conv / upsample.conv). Empty: every level but the innermost
  // (the last encoder level, decoder level 0), as taming lays them out.
  std::vector<bool> resample;
  ConvTowerNames names;
  ConvTowerGroups groups;
  ConvTowerLayout layout = ConvTowerLayout::Taming;
  bool resamples(int level, bool encoder) const;
  int downsample() const;
};

// Sizes from tensor shapes under `prefix` (".../encoder." or ".../decoder."): ch_mult from each
// level's first block (channels / ch), blocks per level and attention from the module lists,
// resampling levels from the resample convs present. in_channels / out_channels are left to the
// caller, which knows the latent width.
ConvTowerConfig derive_conv_tower(const WeightLoader& weights, const std::string& prefix, bool decoder, int ch,
                                  const ConvTowerNames& names = {});
// The same for diffusers' names; ch is level 0's width (read from the shapes too).
ConvTowerConfig derive_diffusers_conv_tower(const WeightLoader& weights, const std::string& prefix, bool decoder);

// y [O, H', W'] = conv2d(x [C, H, W]) with "same" padding (k / 2 on every side).
Tensor conv_same(Backend& backend, const ConvWeights& c, const Tensor& x);

class ConvTower {
 public:
  enum class Direction { Encoder, Decoder };
  // Tensor names under `prefix`: conv_in, down.N / up.N (.block.J, .attn.J, .downsample.conv /
  // .upsample.conv), mid.block_1, mid.attn_1, mid.block_2, norm_out, conv_out, each followed by
  // config.names' suffix; or their diffusers counterparts (ConvTowerLayout).
  ConvTower(Direction direction, const ConvTowerConfig& config, WeightLoader& weights, const std::string& prefix);

  // x [in_channels, H, W] -> [out_channels, H', W'] (H' = H / downsample or H * downsample).
  // With a trace sink, the outputs of conv_in, the middle block, each level (under diffusers'
  // numbering: up_K / down_K), norm_out (before SiLU) and conv_out under `trace_prefix` +
  // conv_in, mid_block, up_K, conv_norm_out, conv_out.
  // `cancelled` is polled before every ResNet block and attention (it throws Cancelled): a
  // full-resolution decode takes tens of seconds on a CPU.
  Tensor run(const Tensor& x, TraceSink* trace = nullptr, const std::string& trace_prefix = "",
             const std::function<bool()>& cancelled = nullptr);
  // Same, into a preallocated output.
  void run(const Tensor& x, const Tensor& y);

 private:
  struct Resnet {
    NormWeights norm1, norm2;
    ConvWeights conv1, conv2, nin;  // nin.w undefined when channels are kept
  };
  struct Attn {
    NormWeights norm;
    ConvWeights qkv, proj;        // taming: fused 1x1 convs
    LinearWeights q, k, v, out;   // diffusers: linears over the channel vectors
    int channels = 0;
  };
  struct Level {
    std::vector<Resnet> blocks;
    std::vector<Attn> attn;
    ConvWeights resample;  // downsample (encoder) / upsample (decoder) conv, or undefined
  };

  ConvWeights conv(WeightLoader& w, const std::string& name, int out, int in, int k);
  NormWeights norm(WeightLoader& w, const std::string& name, int channels);
  Resnet load_resnet(WeightLoader& w, const std::string& p, int in, int out);
  Attn load_attn(WeightLoader& w, const std::string& p, int channels);
  Tensor resnet(const Resnet& r, const Tensor& x);
  Tensor attention(const Attn& a, const Tensor& x);
  Tensor norm_silu(const NormWeights& n, const Tensor& x, TraceSink* trace = nullptr, const std::string& name = "");
  Tensor level(const Level& lvl, Tensor h);
  Tensor body(const Tensor& x, TraceSink* trace, const std::string& trace_prefix);  // up to norm_out + SiLU

  void poll() const {
    if (cancelled_ && *cancelled_ && (*cancelled_)()) throw Cancelled();
  }

  Backend& backend_;
  const std::function<bool()>* cancelled_ = nullptr;  // during run() only
  Direction direction_;
  ConvTowerConfig config_;
  ConvWeights conv_in_, conv_out_;
  std::vector<Level> levels_;
  Resnet mid1_, mid2_;
  Attn mid_attention_;
  NormWeights norm_out_;
};

}  // namespace vargpt
