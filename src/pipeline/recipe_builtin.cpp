// The built-in recipes: JSON documents of the recipe schema (recipe.h). The W4
// and W3 integer recipes use asymmetric groups (UINT codes, FP16 scale and
// minimum per group: GPTQ/AWQ with zero points), so RTN, GPTQ, AWQ and EasyQuant
// differ only in the method. lm_head and token_embedding are not named, so they
// stay FP16 (recipe.h) except in fp32 and bf16. The GPTQ recipes leave
// true_sequential off: it costs three more passes of every layer over the
// calibration set (2.1x the time on stories260K, same KLD); a recipe file can set it.
//
// The GGUF recipes store llama.cpp's block types (formats/gguf_blocks.h), so the
// file exports to a GGUF that llama.cpp runs without requantizing:
//   q8_0-rtn    every tensor Q8_0 (8.5 bpw), round to nearest: llama.cpp's Q8_0.
//   q4_0-gptq   linears Q4_0 (4.5 bpw) by GPTQ, each block's header chosen with
//               the importance diag(H); token_embedding and lm_head Q8_0.
//   q4_0-awq    the same with AWQ scales folded, then RTN weighted by diag(H).
//   q4_K-gptq   close to llama.cpp's Q4_K_M: linears Q4_K (4.5 bpw) by GPTQ, every
//               v_proj and down_proj Q6_K (6.56 bpw; Q4_K_M gives Q6_K to about
//               half of them), token_embedding and lm_head Q8_0. Q4_K and Q6_K
//               need rows of whole 256-blocks: narrower tensors fall back to
//               Q5_0 / Q8_0 as llama.cpp does (SmolLM2's 576-wide inputs).
// GPTQ's header choice weighted by diag(H) ("importance") measured on SmolLM2-135M
// (32 x 512 C4 calibration tokens, KLD to the source on 8 x 512 wikitext-2 tokens):
// derived-F32 source, Q4_0 0.110 -> 0.097 and Q4_K 0.0144 -> 0.0136; the Q4_1 GGUF
// as source, Q4_0 0.266 -> 0.146. So the GPTQ recipes set it.
// A tensor whose rows are not whole blocks of 32 either is kept FP16 (the last
// fallback, llama.cpp's too). The tables are Q8_0 where llama.cpp would use Q6_K
// for an untied head whose rows are whole 256-blocks; with a tied head (SmolLM2)
// llama.cpp also chooses Q8_0.
#include "pipeline/recipe.h"

namespace lowbit {

const std::vector<BuiltinRecipe>& builtin_recipes() {
  static const std::vector<BuiltinRecipe> table = {
      {"fp32", R"json({"name": "fp32", "description": "no quantization: every tensor FP32 (the reference)",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "none", "format": "fp32"}],
          "default": {"method": "none", "format": "fp32"}})json"},
      {"bf16", R"json({"name": "bf16", "description": "BF16 storage of every tensor, FP32 compute",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "none", "format": "bf16"}],
          "default": {"method": "none", "format": "bf16"}})json"},
      {"rot", R"json({"name": "rot",
          "description": "QuaRot rotation only (randomized Hadamard residual stream, online Hadamard on down_proj), FP32 weights: the FP model rotated",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": false},
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "none", "format": "fp32"}],
          "default": {"method": "none", "format": "fp32"}})json"},
      {"w8", R"json({"name": "w8", "description": "INT8 per output channel, round to nearest (W8A16)",
          "default": {"method": "rtn", "format": "int8_pc"}})json"},
      {"w4g128-rtn", R"json({"name": "w4g128-rtn", "description": "INT4 asymmetric groups of 128, round to nearest",
          "default": {"method": "rtn", "format": "int4_g128_asym"}})json"},
      {"w4g128-gptq", R"json({"name": "w4g128-gptq", "description": "INT4 asymmetric groups of 128, GPTQ",
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128}}})json"},
      {"w4g128-awq",
       R"json({"name": "w4g128-awq", "description": "INT4 asymmetric groups of 128, AWQ scales + clipping search",
          "default": {"method": "awq", "format": "int4_g128_asym", "options": {"search": "mse", "awq_grid": 20}}})json"},
      {"w4g128-easyquant", R"json({"name": "w4g128-easyquant",
          "description": "INT4 asymmetric groups of 128, EasyQuant: 0.5% outliers kept, ranges optimised (data-free)",
          "default": {"method": "easyquant", "format": "int4_g128_asym", "options": {"outlier_fraction": 0.005}}})json"},
      {"w4g128-rtn-ada", R"json({"name": "w4g128-rtn-ada",
          "description": "w4g128-rtn refined by AdaQuant (group scales, minimums and up/down rounding on H, 4 steps)",
          "default": {"method": "rtn", "format": "int4_g128_asym", "options": {"adaquant_steps": 4}}})json"},
      {"w3g128-rtn", R"json({"name": "w3g128-rtn", "description": "INT3 asymmetric groups of 128, round to nearest",
          "default": {"method": "rtn", "format": "int3_g128"}})json"},
      {"w3g128-gptq", R"json({"name": "w3g128-gptq", "description": "INT3 asymmetric groups of 128, GPTQ",
          "default": {"method": "gptq", "format": "int3_g128", "options": {"damp": 0.01, "block_size": 128}}})json"},
      {"w3g128-gptq-ada", R"json({"name": "w3g128-gptq-ada",
          "description": "w3g128-gptq refined by AdaQuant (group scales, minimums and up/down rounding on H, 4 steps)",
          "default": {"method": "gptq", "format": "int3_g128",
                      "options": {"damp": 0.01, "block_size": 128, "adaquant_steps": 4}}})json"},
      {"w3g128-gptq-lorc", R"json({"name": "w3g128-gptq-lorc",
          "description": "INT3 groups of 128, GPTQ + rank-8 LoRC correction with INT8 factors (ZeroQuant-V2)",
          "default": {"method": "gptq", "format": "int3_g128",
                      "options": {"damp": 0.01, "block_size": 128, "lorc_rank": 8, "lorc_format": "int8_pc"}}})json"},
      {"w2g64-gptq", R"json({"name": "w2g64-gptq", "description": "INT2 asymmetric groups of 64, GPTQ",
          "default": {"method": "gptq", "format": "int2_g64", "options": {"damp": 0.01, "block_size": 128}}})json"},
      // Trellis-coded weights (formats/trellis_code.h) by BlockLDLQ (GPTQ with 64-column
      // Viterbi blocks, quant/gptq.cpp), an FP16 scale per 256 columns: on SmolLM2-135M's
      // layers.5.q_proj / gate_proj (RTN) tcq2_g256 has 3% more weight MSE than tcq2_g64
      // (0.0925 vs 0.0898, 0.0918 vs 0.0893) for 0.17 fewer bits per weight, where a bit is
      // worth a factor 4 of MSE. Inputs narrower than whole 64-sequences fall back to the
      // INT format of about the same size. Incoherence processing as in QuIP# / QTIP: the
      // QuaRot rotation (randomized Hadamard residual stream, per-head Hadamard folded into
      // v_proj / o_proj, online Hadamard on down_proj's input) makes every linear's input
      // side Gaussian-like, what the trellis codebook fits: on the derived-F32 SmolLM2-135M,
      // down_proj alone in tcq2_g256 goes from KLD 0.536 to 0.324 with it, tcq3_g256 from
      // 0.136 to 0.093 (docs/RESULTS.md).
      {"w2-tcq", R"json({"name": "w2-tcq", "description": "trellis codes, 2 bits + FP16 scale per 256 columns, BlockLDLQ, Hadamard incoherence",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": true},
          "default": {"method": "gptq", "format": "tcq2_g256", "fallback": "int2_g64", "options": {"damp": 0.01}}})json"},
      {"w2p5-tcq", R"json({"name": "w2p5-tcq", "description": "trellis codes, 2.5 bits + FP16 scale per 256 columns, BlockLDLQ, Hadamard incoherence",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": true},
          "default": {"method": "gptq", "format": "tcq2p5_g256", "fallback": "int3_g128", "options": {"damp": 0.01}}})json"},
      {"w3-tcq", R"json({"name": "w3-tcq", "description": "trellis codes, 3 bits + FP16 scale per 256 columns, BlockLDLQ, Hadamard incoherence",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": true},
          "default": {"method": "gptq", "format": "tcq3_g256", "fallback": "int3_g128", "options": {"damp": 0.01}}})json"},
      {"w4-tcq", R"json({"name": "w4-tcq", "description": "trellis codes, 4 bits + FP16 scale per 256 columns, BlockLDLQ, Hadamard incoherence",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": true},
          "default": {"method": "gptq", "format": "tcq4_g256", "fallback": "int4_g128_asym", "options": {"damp": 0.01}}})json"},
      // Residual VQ (formats/vq_code.h), for comparison with w2-tcq at the same code and
      // scale size: two stages of 256 centroids on 8-weight vectors (k-means codebooks per
      // tensor, FP16, +0.074 bpw on a 576 x 1536 matrix), GPTQ with 8-column blocks, and the
      // same Hadamard incoherence processing as w2-tcq so that the two differ only in the
      // code. No packed kernel: the runtime keeps it as FP32. Inputs whose width is not a
      // multiple of 8 fall back to int2_g64.
      {"w2-vq", R"json({"name": "w2-vq", "description": "residual VQ, 2 x 8-bit codes per 8 weights + FP16 scale per 256, GPTQ, Hadamard incoherence",
          "rotation": {"seed": 0, "online_down": true, "rotate_v_heads": true},
          "default": {"method": "gptq", "format": "vq2x8_g256", "fallback": "int2_g64", "options": {"damp": 0.01}}})json"},
      // PTQ1.61 (quant/ptq161.h): 12.5% salient input channels (by calibrated diag(H))
      // at 4 bits per row, the rest binarised with an (alpha, mu) pair per 192 columns:
      // 1.60 bpw on 576 columns, 1.54 on 1536, mask and scales included. Measured on the
      // derived-F32 SmolLM2-135M (64 x 512 C4 calibration tokens; wikitext-2, ctx 512, 32
      // chunks): decoder linears 1.585 bpw, KLD 9.57, PPL 3.5e5 (base 22.59): a 135M model
      // does not survive binarising 87.5% of its input channels.
      {"w1p6-ptq161", R"json({"name": "w1p6-ptq161",
          "description": "PTQ1.61: salient input channels (12.5%, by activation energy) 4-bit, the rest binarised, ~1.6 bpw",
          "default": {"method": "rtn", "format": "ptq161_s125_b192", "options": {"importance": true}}})json"},
      {"nvfp4",
       R"json({"name": "nvfp4", "description": "NVFP4 (FP4 E2M1, UE4M3 scale per 16, FP32 tensor scale), round to nearest",
          "default": {"method": "rtn", "format": "nvfp4"}})json"},
      {"mxfp4", R"json({"name": "mxfp4", "description": "OCP MXFP4 (FP4 E2M1, E8M0 scale per 32), round to nearest",
          "default": {"method": "rtn", "format": "mxfp4"}})json"},
      // Weights and activations (issue 5). Activations are fake-quantized at each linear's
      // input (quant/act_quant.h); lm_head keeps FP16 weights and FP32 inputs.
      {"w8a8", R"json({"name": "w8a8",
          "description": "INT8 per-channel weights (RTN), INT8 per-tensor static activations (calibrated max)",
          "default": {"method": "rtn", "format": "int8_pc", "act": {"format": "int8", "granularity": "tensor"}}})json"},
      {"w8a8-smooth", R"json({"name": "w8a8-smooth",
          "description": "w8a8 after SmoothQuant (alpha 0.5, folded into the q/k/v and gate/up RMSNorms)",
          "smooth": {"alpha": 0.5, "groups": ["qkv", "gateup"]},
          "default": {"method": "rtn", "format": "int8_pc", "act": {"format": "int8", "granularity": "tensor"}}})json"},
      {"w8a8-osp", R"json({"name": "w8a8-osp",
          "description": "w8a8 after Outlier Suppression+ (channel shift into the biases, scale searched on 20 thresholds)",
          "osp": {"grid": 20, "groups": ["qkv", "gateup"]},
          "default": {"method": "rtn", "format": "int8_pc", "act": {"format": "int8", "granularity": "tensor"}}})json"},
      {"w8a8-dyn", R"json({"name": "w8a8-dyn",
          "description": "INT8 per-channel weights (RTN), INT8 per-token dynamic activations",
          "default": {"method": "rtn", "format": "int8_pc", "act": {"format": "int8", "granularity": "token"}}})json"},
      {"w4a8-gptq", R"json({"name": "w4a8-gptq",
          "description": "INT4 asymmetric groups of 128 (GPTQ), INT8 per-token dynamic activations",
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128},
                      "act": {"format": "int8", "granularity": "token"}}})json"},
      {"w4a8-rot-gptq", R"json({"name": "w4a8-rot-gptq",
          "description": "w4a8-gptq on the QuaRot-rotated model (Hadamard residual stream, online Hadamard on down_proj)",
          "rotation": {"seed": 0, "online_down": true},
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128},
                      "act": {"format": "int8", "granularity": "token"}}})json"},
      {"w4a4-gptq", R"json({"name": "w4a4-gptq",
          "description": "INT4 asymmetric groups of 128 (GPTQ), INT4 [-7, 7] per-token dynamic activations",
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128},
                      "act": {"format": "int4", "granularity": "token"}}})json"},
      {"w4a4-rot-gptq", R"json({"name": "w4a4-rot-gptq",
          "description": "w4a4-gptq on the QuaRot-rotated model (Hadamard residual stream, online Hadamard on down_proj)",
          "rotation": {"seed": 0, "online_down": true},
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128},
                      "act": {"format": "int4", "granularity": "token"}}})json"},
      {"w4a4-rot-smooth-gptq", R"json({"name": "w4a4-rot-smooth-gptq",
          "description": "w4a4-rot-gptq with SmoothQuant after the rotation (alpha searched per layer on 11 points)",
          "rotation": {"seed": 0, "online_down": true},
          "smooth": {"search": true, "grid": 10, "groups": ["qkv", "gateup"]},
          "default": {"method": "gptq", "format": "int4_g128_asym", "options": {"damp": 0.01, "block_size": 128},
                      "act": {"format": "int4", "granularity": "token"}}})json"},
      {"fp8", R"json({"name": "fp8",
          "description": "FP8 E4M3 weights (FP32 scale per channel) and FP8 E4M3 per-token dynamic activations",
          "default": {"method": "rtn", "format": "fp8_e4m3", "act": {"format": "fp8_e4m3", "granularity": "token"}}})json"},
      {"mxfp4-w4a4", R"json({"name": "mxfp4-w4a4",
          "description": "OCP MXFP4 weights (RTN) and activations (E8M0 scale per 32 inputs)",
          "default": {"method": "rtn", "format": "mxfp4", "act": {"format": "mxfp4"}}})json"},
      {"nvfp4-w4a4", R"json({"name": "nvfp4-w4a4",
          "description": "NVFP4 weights (RTN) and activations (UE4M3 scale per 16 inputs, FP32 per-token scale)",
          "default": {"method": "rtn", "format": "nvfp4", "act": {"format": "nvfp4"}}})json"},
      {"mxfp4-w4a4-rot", R"json({"name": "mxfp4-w4a4-rot",
          "description": "mxfp4-w4a4 on the QuaRot-rotated model (Hadamard residual stream, online Hadamard on down_proj)",
          "rotation": {"seed": 0, "online_down": true},
          "default": {"method": "rtn", "format": "mxfp4", "act": {"format": "mxfp4"}}})json"},
      {"nvfp4-w4a4-rot", R"json({"name": "nvfp4-w4a4-rot",
          "description": "nvfp4-w4a4 on the QuaRot-rotated model (Hadamard residual stream, online Hadamard on down_proj)",
          "rotation": {"seed": 0, "online_down": true},
          "default": {"method": "rtn", "format": "nvfp4", "act": {"format": "nvfp4"}}})json"},
      // GGUF block types (llama.cpp's quantization types), see the file comment.
      {"q8_0-rtn", R"json({"name": "q8_0-rtn", "description": "GGUF Q8_0 everywhere (8.5 bpw), round to nearest",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0", "fallback": "fp16"}],
          "default": {"method": "rtn", "format": "q8_0", "fallback": "fp16"}})json"},
      {"q4_0-gptq", R"json({"name": "q4_0-gptq",
          "description": "GGUF Q4_0 linears (4.5 bpw) by GPTQ, Q8_0 embedding and head",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0", "fallback": "fp16"}],
          "default": {"method": "gptq", "format": "q4_0", "fallback": "fp16",
                      "options": {"damp": 0.01, "block_size": 128, "importance": true}}})json"},
      {"q4_0-awq", R"json({"name": "q4_0-awq",
          "description": "GGUF Q4_0 linears (4.5 bpw), AWQ scales then RTN weighted by diag(H), Q8_0 embedding and head",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0", "fallback": "fp16"}],
          "default": {"method": "awq", "format": "q4_0", "fallback": "fp16", "options": {"awq_grid": 20}}})json"},
      {"q4_K-gptq", R"json({"name": "q4_K-gptq",
          "description": "GGUF Q4_K linears by GPTQ, Q6_K v_proj/down_proj, Q8_0 embedding and head (like Q4_K_M)",
          "rules": [{"match": "^(token_embedding|lm_head)$", "method": "rtn", "format": "q8_0", "fallback": "fp16"},
                    {"match": "v_proj|down_proj", "method": "gptq", "format": "q6_K", "fallback": ["q8_0", "fp16"],
                     "options": {"damp": 0.01, "block_size": 128, "importance": true}}],
          "default": {"method": "gptq", "format": "q4_K", "fallback": ["q5_0", "fp16"],
                      "options": {"damp": 0.01, "block_size": 128, "importance": true}}})json"},
  };
  return table;
}

}  // namespace lowbit
