// QuaRot-style rotation of a Llama-family model (Ashkboos et al. 2024, section
// 4.1) that leaves the FP function unchanged, so that activations (and weights)
// lose their outlier channels before quantization.
//
// RMSNorm commutes with an orthogonal Q once its weight g is folded away:
// rms_norm(x·Q) = rms_norm(x)·Q when g = 1. So, with row vectors and W [out, in]:
//   1. fold each norm weight into the linears it feeds: W ← W·diag(g)
//      (attn_norm → q/k/v, ffn_norm → gate/up, output_norm → lm_head); g ← 1;
//   2. rotate the residual stream h ← h·Q (Q = randomized Hadamard of order dim,
//      model/rotation_spec.h):
//        token_embedding E ← E·Q
//        readers of the stream  W ← W·Q      (q/k/v, gate/up, lm_head)
//        writers to the stream  W ← Qᵀ·W, b ← b·Q   (o_proj, down_proj)
//   3. online_down: W_down ← W_down·H_ffn, and the runtime feeds down_proj x·H_ffn
//      (model/online_hadamard_linear.h): x·H·(W·H)ᵀ = x·Wᵀ;
//   4. rotate_v_heads: per head, v_proj rows W_h ← H_hdᵀ·W_h (b_h ← b_h·H_hd) and
//      o_proj's columns of each head W_o,h ← W_o,h·H_hd: attention mixes values
//      per head linearly, so the o_proj input is rotated the same way and the
//      fold is exact without any runtime transform.
// A tied embedding becomes untied: lm_head = E·diag(g_out)·Q, E ← E·Q.
//
// The pieces are separate so the streamed pipeline (quantize_pipeline.h) can
// rotate one layer at a time; rotate_model does a whole in-memory model.
#pragma once

#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/rotation_spec.h"
#include "model/weights.h"

namespace lowbit {

// Steps 1-4 for one decoder layer, in place (norm weights become 1).
Status rotate_layer(LayerWeights& w, const ModelConfig& config, const ModelRotations& rotations);

// E ← E·Q. embedding: [vocab, dim].
void rotate_embedding(std::vector<float>& embedding, const ModelRotations& rotations);

// The rotated output head: head·diag(output_norm)·Q, [vocab, dim]. `head` is the
// untied lm_head or, for a tied model, the unrotated token embedding. Sets
// output_norm to 1.
Matrix rotate_lm_head(const std::vector<float>& head, const ModelConfig& config, std::vector<float>& output_norm,
                      const ModelRotations& rotations);

// The whole model in memory: every step above; config.tied_embeddings becomes
// false. The runtime must then wrap down_proj (attach_online_rotations) when
// spec.online_down.
Status rotate_model(ModelWeights& weights, ModelConfig& config, const RotationSpec& spec);

}  // namespace lowbit
