// lowbit's GGUF block encoders (formats/gguf_blocks.h) against llama.cpp's own
// quantizers (ggml-quants.c quantize_<type>, as llama-quantize calls them), on
// the same matrices, both decoded by lowbit's reference dequantizer (checked
// against gguf-py). Built and run by scripts/compare_gguf_quantizers.sh.
//
// Matrices [rows, cols]: Gaussian N(0, 1) and Student-t with 3 degrees of
// freedom, seeded; or, given a fourth argument, the raw little-endian float32
// [rows, cols] in that file (a real weight matrix). Importance ("imatrix"): one value per column, lognormal with
// sigma 1.5 (column energies of real activations spread over ~100x), given to
// both; without it both run their no-imatrix path (llama.cpp: the _ref
// quantizers, lowbit: all weights 1). Reported per type and case:
//   rel_err = sum_j w_j (x - y)^2 / sum_j w_j x^2 (w = importance or 1)
// for each side, the ratio lowbit / llama.cpp, and the CPU time of each.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "formats/gguf_blocks.h"
#include "io/ggml_types.h"

extern "C" {
// ggml-quants.h: rows of n_per_row values -> blocks; imatrix [n_per_row] or null.
size_t quantize_q4_0(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q4_1(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q5_0(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q5_1(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q8_0(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_iq4_nl(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q2_K(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q3_K(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q4_K(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q5_K(const float*, void*, int64_t, int64_t, const float*);
size_t quantize_q6_K(const float*, void*, int64_t, int64_t, const float*);
}

namespace {

using GgmlQuantize = size_t (*)(const float*, void*, int64_t, int64_t, const float*);

struct Pair {
  const char* name;
  GgmlQuantize ggml;
};

constexpr Pair kPairs[] = {{"q8_0", quantize_q8_0}, {"q6_K", quantize_q6_K}, {"q5_K", quantize_q5_K},
                           {"q4_K", quantize_q4_K}, {"q5_0", quantize_q5_0}, {"q5_1", quantize_q5_1},
                           {"q4_0", quantize_q4_0}, {"q4_1", quantize_q4_1}, {"q3_K", quantize_q3_K},
                           {"q2_K", quantize_q2_K}, {"iq4_nl", quantize_iq4_nl}};

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double relative_error(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>& w,
                      int64_t cols) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double wi = w[i % cols];
    num += wi * (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    den += wi * static_cast<double>(x[i]) * x[i];
  }
  return num / den;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lowbit;
  const int64_t rows = argc > 1 ? std::stoll(argv[1]) : 64;
  const int64_t cols = argc > 2 ? std::stoll(argv[2]) : 4096;
  const std::string only = argc > 3 && std::string(argv[3]) != "all" ? argv[3] : "";
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal;
  std::student_t_distribution<float> student(3.0f);
  std::lognormal_distribution<float> lognormal(0.0f, 1.5f);
  std::vector<float> importance(static_cast<size_t>(cols)), ones(static_cast<size_t>(cols), 1.0f);
  std::vector<float> gaussian(static_cast<size_t>(rows * cols)), heavy(gaussian.size());
  for (float& v : importance) v = lognormal(gen);
  for (float& v : gaussian) v = normal(gen);
  for (float& v : heavy) v = student(gen);
  struct Matrix {
    const char* name;
    const std::vector<float>* x;
  };
  std::vector<Matrix> matrices = {{"gaussian", &gaussian}, {"student3", &heavy}};
  std::vector<float> file(gaussian.size());
  if (argc > 4) {
    std::ifstream in(argv[4], std::ios::binary);
    in.read(reinterpret_cast<char*>(file.data()), static_cast<std::streamsize>(file.size() * sizeof(float)));
    if (!in) {
      std::fprintf(stderr, "%s: cannot read %lld x %lld float32 values\n", argv[4], static_cast<long long>(rows),
                   static_cast<long long>(cols));
      return 1;
    }
    matrices = {{"file", &file}};
  }

  std::printf("%-7s %-9s %-8s %12s %12s %7s %9s %9s\n", "type", "matrix", "imatrix", "lowbit", "llama.cpp", "ratio",
              "lowbit_us", "ggml_us");
  for (const Pair& p : kPairs) {
    if (!only.empty() && only != p.name) continue;
    const GgufBlockType* type = find_gguf_block_type(p.name);
    const GgmlTypeTraits* traits = type ? find_ggml_type(type->type_id) : nullptr;
    if (traits == nullptr) return 1;
    for (const Matrix& m : matrices) {
      const std::vector<float>& x = *m.x;
      for (const bool weighted : {false, true}) {
        const std::span<const float> w = weighted ? std::span<const float>(importance) : std::span<const float>();
        double t0 = cpu_seconds();
        auto q = gguf_quantize(*type, x.data(), rows, cols, w);
        const double lowbit_s = cpu_seconds() - t0;
        if (!q.ok()) {
          std::fprintf(stderr, "%s\n", q.status().message().c_str());
          return 1;
        }
        std::vector<float> y(x.size()), yg(x.size());
        if (!gguf_dequantize(*type, *q, y.data()).ok()) return 1;
        std::vector<uint8_t> ggml_bytes(q->codes.size());
        t0 = cpu_seconds();
        p.ggml(x.data(), ggml_bytes.data(), rows, cols, weighted ? importance.data() : nullptr);
        const double ggml_s = cpu_seconds() - t0;
        traits->dequantize(ggml_bytes.data(), yg.data(), rows * cols / type->block_size);
        const std::vector<float>& wm = weighted ? importance : ones;
        const double el = relative_error(x, y, wm, cols), eg = relative_error(x, yg, wm, cols);
        const double per_weight = 1e6 / static_cast<double>(rows * cols);
        std::printf("%-7s %-9s %-8s %12.4e %12.4e %7.3f %9.3f %9.3f\n", p.name, m.name,
                    weighted ? "yes" : "no", el, eg, el / eg, lowbit_s * per_weight, ggml_s * per_weight);
      }
    }
  }
  return 0;
}
