// diffusers' UNet2DConditionModel in the SDXL layout (BLIP3-o's diffusion decoder): conv_in, the
// sinusoidal timestep embedding and the "text_time" added conditioning, down blocks of ResNets
// (with the time embedding added) and Transformer2D blocks (GroupNorm, linear proj_in, LayerNorm
// + self-attention, LayerNorm + cross-attention to the context, LayerNorm + GEGLU feed-forward,
// linear proj_out, residual), stride-2 downsampling, the middle block, up blocks that concatenate
// the skips and upsample (nearest 2x + conv), then GroupNorm, SiLU, conv_out. Sizes come from
// unet/config.json and the tensor shapes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "../common/trace.h"
#include "../common/weights.h"

namespace vargpt {

struct UNet2DConfig {
  int in_channels = 0, out_channels = 0;
  int sample_size = 0;  // the latent side it was trained at (a pipeline's default size)
  std::vector<int> block_out_channels;
  std::vector<bool> down_cross, up_cross;  // CrossAttn{Down,Up}Block2D vs {Down,Up}Block2D
  std::vector<int> heads;                  // attention heads per down block (up blocks reversed)
  int groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int cross_attention_dim = 0;
  bool text_time = false;  // addition_embed_type "text_time"
  int addition_time_embed_dim = 0;
  int text_embeds_dim = 0;  // add_embedding input minus the time ids' embeddings
  int time_ids = 0;         // time ids per batch row (6 for SDXL)
  int time_embed_dim = 0;
  // Latent sides must be multiples of this: every block but the last halves them.
  int downsample() const { return 1 << (static_cast<int>(block_out_channels.size()) - 1); }
};

// `dir` holds config.json; shapes are checked against `weights`.
UNet2DConfig read_unet2d_config(const std::string& dir, const WeightLoader& weights);

// The sinusoid of diffusers' get_timestep_embedding (max period 10000), evaluated in double and
// rounded to f32: out [N, dim] (host) for N values.
Tensor timestep_sinusoid(const std::vector<double>& t, int dim, bool flip_sin_to_cos, double freq_shift);

struct UNet2DInputs {
  Tensor sample;                 // [B, C, h, w] f32
  std::vector<double> timestep;  // one value, or one per batch row
  Tensor context;                // encoder_hidden_states [B, L, cross_attention_dim] f32
  Tensor text_embeds;            // [B, text_embeds_dim] f32 (text_time only)
  std::vector<double> time_ids;  // B * time_ids values, row-major (text_time only)
  // Polled between blocks (it throws Cancelled): one SDXL step takes minutes on a small CPU.
  std::function<bool()> cancelled;
};

// The cross-attention keys and values of one context for every transformer block: they depend on
// the context only, so a sampling loop computes them once instead of at every step.
struct UNet2DContextCache {
  Tensor context;
  std::vector<Tensor> keys, values;  // [B, L, C] per transformer block, in load order
};

class UNet2D {
 public:
  UNet2D(const UNet2DConfig& config, WeightLoader& weights);
  const UNet2DConfig& config() const { return config_; }
  // The noise prediction [B, out_channels, h, w]. Traces time_proj, time_embedding, add_time_proj,
  // add_embedding, conv_in, down_i, mid, up_i, conv_norm_out, conv_out.
  // With a cache made by prepare_context(in.context), the cross-attention keys and values are read
  // from it.
  Tensor forward(const UNet2DInputs& in, TraceSink* trace = nullptr, const UNet2DContextCache* cache = nullptr);
  UNet2DContextCache prepare_context(const Tensor& context);

 private:
  struct Resnet {
    NormWeights norm1, norm2;
    ConvWeights conv1, conv2, shortcut;  // shortcut.w undefined when channels are kept
    LinearWeights time_proj;
    int in = 0, out = 0;
  };
  struct Attention {
    LinearWeights q, k, v, out;
  };
  struct TransformerBlock {
    NormWeights norm1, norm2, norm3;
    Attention self_attn, cross_attn;
    LinearWeights ff_in, ff_out;  // GEGLU projection (2 x inner) and the output linear
    int index = 0;                // position in UNet2DContextCache
  };
  struct Transformer {
    NormWeights norm;
    LinearWeights proj_in, proj_out;
    std::vector<TransformerBlock> blocks;
    int heads = 1;
  };
  struct Block {
    std::vector<Resnet> resnets;
    std::vector<Transformer> attentions;  // empty, or one per resnet
    ConvWeights resample;                 // downsampler / upsampler conv, or undefined
  };

  Resnet load_resnet(WeightLoader& w, const std::string& p);
  Transformer load_transformer(WeightLoader& w, const std::string& p, int channels, int heads);
  Tensor conv(const ConvWeights& c, const Tensor& x, int stride = 1);
  Tensor norm_silu(const NormWeights& n, const Tensor& x, float eps, bool silu = true);
  Tensor resnet(const Resnet& r, const Tensor& x, const Tensor& temb);
  Tensor transformer(const Transformer& t, const Tensor& x, const Tensor& context, const UNet2DContextCache* cache);
  // residual += to_out(attention(q(x), k, v)); k and v [B, L, C] from the context.
  void attention(const Attention& a, const Tensor& x, const Tensor& k, const Tensor& v, int heads,
                 const Tensor& residual);
  void project_kv(const Attention& a, const Tensor& context, Tensor& k, Tensor& v);

  Backend& backend_;
  UNet2DConfig config_;
  ConvWeights conv_in_, conv_out_;
  LinearWeights time_1_, time_2_, add_1_, add_2_;
  std::vector<Block> down_, up_;
  Resnet mid_first_;
  std::vector<Transformer> mid_attn_;
  std::vector<Resnet> mid_resnets_;  // after each mid attention
  NormWeights norm_out_;
  int transformer_blocks_ = 0;
};

}  // namespace vargpt
