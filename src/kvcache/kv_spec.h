// What a quantized KV cache stores: the `--kv SPEC` grammar and its parsed form.
//
// SPEC = kNvM{-PART}, N and M the key and value bits, or "fp32" (the FP32 cache),
// or "fp16" (keys and values stored as IEEE half, rounded to nearest even: the
// F16 cache llama.cpp uses by default; no parts).
//   kNvM      integer codes with a scale and a zero point (FP16, FP32 above 8 bits)
//             per group; N, M in 2..16, or 32 for FP32 storage of that tensor.
//             Keys and values per token, groups of G elements along head_dim.
// PARTs, in any order, each at most once:
//   kivi      keys per channel, grouped over blocks of B tokens; values per token (KIVI)
//   gG        group size along head_dim for per-token tensors (default min(32, head_dim))
//   bB        tokens per key block under -kivi (default 32)
//   rR        the R most recent tokens stay FP32; older ones are quantized a
//             token (or a block of B tokens) at a time (KIVI's residual window)
//   sinkS     the first S tokens stay FP32 (attention sinks)
//   sparseP   the P% largest |x| of each token's row are kept exactly in a side
//             list (KVQuant's dense-and-sparse); P in (0, 100]
//   prerope   keys quantized before RoPE, RoPE applied after dequantization (KVQuant)
//   rot       Hadamard rotation of every key/value head (RotateKV): x ← x·H/sqrt(n) on
//             each head's vector (n = head_dim); the block rotates the queries to
//             match and un-rotates the attention output, so q·k and the output are
//             unchanged in exact arithmetic
//   rotgG     grouped-head rotation (RotateKV): one Hadamard over the concatenated
//             vectors of G consecutive KV heads (n = G·head_dim; G divides
//             n_kv_heads), which also spreads an outlier channel of one head over
//             the other heads of its group. A query head attends to one KV head
//             only, so the queries cannot be rotated to match; reads un-rotate
//             (x·Hᵀ) instead, and attention sees the dequantized keys and values
//             in the original basis. -rotg1 is -rot. n = 2^k·m with m in
//             {1, 12, 20, 28, 36, 44, 52, 60} (kernels/hadamard.h), e.g. SmolLM2's
//             3 KV heads of 64: -rotg3, n = 192 = 16·12
//   reorder   RotateKV's outlier-aware channel reordering (kv_channel_order.h): key
//             channels permuted before the rotation so that the channels largest on
//             calibration data are spread over the Hadamard blocks (the KV heads
//             under -rot, the groups under -rotgG); needs -rot or -rotgG; keys are
//             read back un-rotated and un-permuted
//   nuq       non-uniform codebooks fitted on calibration data (KVQuant's NUQ)
//   qnorm     KVQuant's Q-Norm (nuq_fit.h normalize_codebook_moments): each fitted
//             codebook shifted and scaled so that the coded calibration values have
//             the data's mean and standard deviation; needs -nuq
//   fp8       FP8 E4M3 codes with one FP16 scale per group (needs 8 bits: k8v8)
//   e5m2      FP8 E5M2 codes (k8v8)
//   fp4       FP4 E2M1 codes (k4v4)
// Examples: k8v8, k4v4-rot, k2v2-kivi-r128, k3v3-nuq-sparse1-sink4, k8v8-fp8,
// k2v2-kivi-r128-prerope-rotg3, k2v2-rot-reorder, k3v3-nuq-qnorm.
// A per-layer configuration (KVTuner's precision pairs, NUQ codebooks) is a JSON
// file (kv_config_file.h) whose "spec" holds the shared parts; so is a spec's
// fitted state (codebooks, key channel order).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_channel_order.h"
#include "kvcache/kv_codebooks.h"

namespace lowbit {

enum class KvElement {
  kFloat32,   // stored as is
  kInteger,   // uintN with scale and zero point
  kFp8E4M3,   // symmetric, one scale per group
  kFp8E5M2,
  kFp4E2M1,
  kCodebook,  // NUQ: 2^bits levels on [-1, 1] with scale and centre
  kFloat16,   // IEEE half, no scale (the "fp16" spec)
};

enum class KvGranularity {
  kPerToken,    // one scale group = G consecutive elements of a token's row
  kPerChannel,  // one scale group = one channel over a block of B tokens
};

// The keys or the values of one layer.
struct KvTensorSpec {
  KvElement element = KvElement::kFloat32;
  int bits = 32;
  KvGranularity granularity = KvGranularity::kPerToken;
  int group = 0;         // per-token group along head_dim; 0 = min(32, head_dim)
  int token_block = 32;  // per-channel: tokens per block

  bool quantized() const { return element != KvElement::kFloat32; }
  bool operator==(const KvTensorSpec&) const = default;
};

struct KvLayerSpec {
  KvTensorSpec key;
  KvTensorSpec value;
  bool operator==(const KvLayerSpec&) const = default;
};

struct KvSpec {
  std::string name = "fp32";       // the spec text (for a configuration file: its shared parts)
  std::string source;              // the configuration file it came from, or empty
  std::vector<KvLayerSpec> layers{KvLayerSpec{}};  // one entry for all layers, or one per layer
  int residual = 0;                // -rR
  int sinks = 0;                   // -sinkS
  double sparse_percent = 0.0;     // -sparseP
  bool pre_rope = false;           // -prerope
  bool rotate = false;             // -rot or -rotgG
  int rotate_group = 1;            // KV heads per Hadamard block: 1 for -rot, G for -rotgG
  bool reorder_keys = false;       // -reorder: key channels permuted before the rotation
  bool qnorm = false;              // -qnorm: codebook moments matched to the calibration data
  KvCodebooks codebooks;           // NUQ levels per layer (filled by calibration or a file)
  KvChannelOrder key_order;        // -reorder's permutation per layer (filled by calibration or a file)

  // Every tensor of every layer stored in FP32 without rotation: the plain FP32 cache.
  bool is_fp32() const;
  bool uses_codebooks() const;
  // Whether calibration data is still needed: NUQ codebooks or the -reorder order missing.
  bool needs_fitting() const { return (uses_codebooks() && codebooks.empty()) || (reorder_keys && key_order.empty()); }
  const KvLayerSpec& layer(int i) const { return layers.size() == 1 ? layers[0] : layers[i]; }
  // Mean of key and value bits over layers (FP32 tensors count 32).
  double average_bits(int n_layers) const;
  // The spec text, with the file it came from when there is one.
  std::string describe() const;
};

// Parses the grammar above; errors quote the spec and name the bad part.
Expected<KvSpec> parse_kv_spec(const std::string& text);
// One line per part, for --help.
const char* kv_spec_help();

// The element a spec stores for `bits` under the spec's element family (integer,
// fp8, e5m2, fp4, nuq): bits 32 is FP32. Errors name the part that does not fit.
Expected<KvTensorSpec> kv_tensor_with_bits(const KvTensorSpec& like, int bits, const std::string& what);

}  // namespace lowbit
