// `lowbit info MODEL [--json F]`: architecture, hyper-parameters, tensors.
#include "cli/commands.h"

#include <cstdio>

#include "model/lowbit_file.h"

namespace lowbit::cli {

void register_info(CLI::App& root, CommandRunner& runner) {
  auto flags = std::make_shared<ModelFlags>();
  CLI::App* app = root.add_subcommand("info", "Print a model's architecture, hyper-parameters and tensors");
  add_model_flags(*app, *flags, false);
  app->callback([flags, &runner] {
    runner.run = [flags]() -> Status {
      LB_ASSIGN_OR_RETURN(RunnableModel m,
                          load_runnable(flags->model_path, flags->tokenizer_path, nullptr, act_runtime(*flags)));
      const ModelConfig& c = m.loaded.config;
      const FileSummary& s = m.loaded.summary;
      const double bpw = file_bits_per_weight(s);
      std::printf("model:        %s (%s)\n", s.path.c_str(), s.format.c_str());
      std::printf("architecture: %s\n", c.architecture.c_str());
      std::printf("layers %d, dim %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d, context %d\n",
                  c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size, c.max_seq_len);
      std::printf("norm eps %g, rope theta %g (%s%s), tied embeddings %s, qkv bias %s\n", c.norm_eps, c.rope_theta,
                  rope_layout_name(c.rope_layout), c.rope_scaling.llama3 ? ", llama3 scaling" : "",
                  c.tied_embeddings ? "yes" : "no", c.qkv_bias ? "yes" : "no");
      std::printf("parameters:   %llu (%.1fM)\n", static_cast<unsigned long long>(m.model.n_parameters()),
                  m.model.n_parameters() / 1e6);
      std::printf("file:         %.1f MB, %.3f bits per weight over %zu tensors\n", s.file_bytes / 1e6, bpw,
                  s.tensors.size());
      std::printf("tokenizer:    vocab %d, bos %d, eos %d, add_bos %s\n", m.loaded.tokenizer->vocab_size(),
                  m.loaded.tokenizer->bos_id(), m.loaded.tokenizer->eos_id(),
                  m.loaded.tokenizer->add_bos() ? "yes" : "no");
      nlohmann::json tensors = nlohmann::json::array();
      for (const StoredTensor& t : s.tensors) {
        std::string shape;
        uint64_t elements = 1;
        for (int64_t d : t.shape) {
          shape += (shape.empty() ? "" : ", ") + std::to_string(d);
          elements *= static_cast<uint64_t>(d);
        }
        const double tensor_bpw = 8.0 * static_cast<double>(t.n_bytes) / static_cast<double>(elements);
        if (flags->verbose) {
          std::printf("  %-40s %-16s %8.3f bpw  [%s]\n", t.name.c_str(), t.dtype.c_str(), tensor_bpw, shape.c_str());
        }
        tensors.push_back({{"name", t.name},
                           {"dtype", t.dtype},
                           {"shape", t.shape},
                           {"bytes", t.n_bytes},
                           {"bits_per_weight", tensor_bpw}});
      }
      if (!flags->verbose) std::printf("(--verbose lists the tensors)\n");
      // The stored config keys (as in a lowbit file's lowbit.config), plus the
      // report's own fields; "context_length" is kept as the alias of max_seq_len.
      nlohmann::json report = config_to_json(c);
      report["context_length"] = c.max_seq_len;
      report["model"] = s.path;
      report["format"] = s.format;
      report["n_parameters"] = m.model.n_parameters();
      report["file_bytes"] = s.file_bytes;
      report["bits_per_weight"] = bpw;
      report["tensors"] = tensors;
      return write_json_report(flags->json_path, report);
    };
  });
}

}  // namespace lowbit::cli
