// llama.cpp's tensor names for the tensors of a Llama-family model (its
// LLM_TENSOR_* names for the llama and qwen2 architectures): token_embd,
// blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
// ffn_up, ffn_down}, output_norm, output, rope_freqs, each ".weight" (".bias" for
// biases).
#pragma once

#include <string>

namespace lowbit {

// The GGUF name of the tensor lowbit calls `role` in decoder layer `layer` (-1 for
// the model-level tensors: "token_embedding", "output_norm", "lm_head",
// "rope_freqs"); "" when llama.cpp has no such tensor (RMSNorm shifts).
std::string gguf_tensor_name(int layer, const std::string& role);

}  // namespace lowbit
