// The header search of the GGUF block types (gguf_block_codec.h): choose a
// block's scales (and mins) to minimise E = sum_i w_i (x_i - v_i)^2, v_i the
// value as stored, i.e. after fp16 rounding of d (and m / dmin) and integer
// rounding of the K types' sub-block scales and mins.
//
// 1. Element fit (every sub-block; the whole block for the 32-element types).
//    For a fixed assignment of codes q_i, the best scale (and offset) is a
//    weighted least-squares fit, so the problem is the choice of assignment.
//    Assignments come from rounding y_i * t onto the grid, y = x (symmetric
//    types; both signs of the scale are tried) or y = x - a with a the block
//    minimum (types with an offset), for inverse scales t in
//    [range.lo, range.hi] * t0, t0 putting the largest weighted element on the
//    end of the grid (elements without weight may be clipped). The assignment
//    changes only where some y_i * t crosses a midpoint between two grid
//    values, so the sweep sorts those crossings and visits every assignment in
//    the range once, updating the least-squares sums by one element per
//    crossing: the best fit over the range is found exactly, not sampled on a
//    grid of t as llama.cpp's make_qx_quants / make_qkx3_quants do. Where the
//    grid is fine (Q6_K, Q8_0) the crossings are many and each changes little;
//    there only the t that put the largest element exactly on a grid value
//    are visited (so a block that is on the grid is still found). With an offset,
//    Lloyd steps follow (codes nearest the fit, refit) while E falls, since the
//    anchor a is itself a guess.
// 2. Rounding to storage. Single-level types try d (and m) rounded to fp16 and
//    their fp16 neighbours (3 or 3 x 3 headers) and keep the smallest E as
//    stored. Two-level types first choose the fp16 super-block scale d (and
//    dmin) among two candidates: the fit of the sub-block scales onto the
//    integer sub-scale grid (the same sweep, each sub-block weighted by how
//    fast its E grows with its scale), and the scale that puts the largest
//    sub-block scale on the end of its range. For each candidate every
//    sub-block tries its rounded integer scale (and min) and the neighbours
//    +-1, with E as stored; then d and dmin are refitted by least squares to
//    the chosen integers and codes, rounded, and kept if E falls.
// Everything is a pure function of the block's x and w, in a fixed order, so
// results do not depend on the machine, the thread or the other blocks.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/half.h"
#include "formats/gguf_block_codec.h"

namespace lowbit::gguf_codec {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Rounds to an integer, ties away from zero; t must be clamped to a small range first.
inline int round_small(float t) { return static_cast<int>(std::lround(t)); }

// --- fp16 steps --------------------------------------------------------------------

constexpr uint16_t kFp16MaxFinite = 0x7BFF;  // 65504

// Nearest fp16 to v, saturating at +-65504 instead of overflowing to infinity.
uint16_t to_fp16(double v) {
  const uint16_t h = float_to_fp16(static_cast<float>(v));
  if ((h & 0x7FFF) >= 0x7C00) return static_cast<uint16_t>((h & 0x8000) | kFp16MaxFinite);
  return h;
}

// The fp16 value next to h towards +infinity (dir > 0) or -infinity, finite.
uint16_t fp16_step(uint16_t h, int dir) {
  const bool negative = (h & 0x8000) != 0;
  const uint16_t magnitude = h & 0x7FFF;
  if (magnitude == 0) return dir > 0 ? 0x0001 : 0x8001;  // +-0 -> smallest subnormal
  const bool away_from_zero = (dir > 0) != negative;
  if (away_from_zero) return magnitude == kFp16MaxFinite ? h : static_cast<uint16_t>(h + 1);
  return static_cast<uint16_t>(h - 1);
}

// --- Least-squares sums of one assignment -------------------------------------------

// Weighted sums over a sub-block, for v = s * g + m fitted to y:
// [W, Sy, Syy, Sg, Sgg, Syg] = sums of w, w y, w y^2, w g, w g^2, w y g.
struct Sums {
  double w = 0, y = 0, yy = 0, g = 0, gg = 0, yg = 0;
  void add(double wi, double yi, double gi) {
    w += wi;
    y += wi * yi;
    yy += wi * yi * yi;
    g += wi * gi;
    gg += wi * gi * gi;
    yg += wi * yi * gi;
  }
  // Element with weight wi and value yi moves from grid value g0 to g1.
  void move(double wi, double yi, double g0, double g1) {
    g += wi * (g1 - g0);
    gg += wi * (g1 * g1 - g0 * g0);
    yg += wi * yi * (g1 - g0);
  }
};

struct Fit {
  double scale = 0;
  double offset = 0;
  double error = kInf;
};

// Best v = s * g to y: s = Syg / Sgg.
Fit solve_scale(const Sums& s) {
  if (s.gg <= 0) return {0, 0, std::max(0.0, s.yy)};
  const double scale = s.yg / s.gg;
  return {scale, 0, std::max(0.0, s.yy - scale * s.yg)};
}

// Best v = s * g + m to y = x - anchor, reported as offset = m + anchor; with
// `non_positive` the offset is held <= 0 (the optimum then lies on offset = 0,
// the objective being a convex quadratic).
Fit solve_offset(const Sums& s, double anchor, bool non_positive) {
  Fit f;
  const double det = s.w * s.gg - s.g * s.g;
  if (det > 1e-12 * s.w * s.gg) {
    f.scale = (s.w * s.yg - s.y * s.g) / det;
    const double m = (s.gg * s.y - s.g * s.yg) / det;
    f.offset = m + anchor;
    f.error = s.yy - f.scale * s.yg - m * s.y;
  } else {  // every code equal: the offset alone fits the mean
    const double m = s.w > 0 ? s.y / s.w : 0;
    f.offset = m + anchor;
    f.error = s.yy - m * s.y;
  }
  if (non_positive && f.offset > 0) {
    // x = y + anchor fitted by s * g alone.
    const double xg = s.yg + anchor * s.g;
    const double xx = s.yy + 2 * anchor * s.y + anchor * anchor * s.w;
    f.offset = 0;
    f.scale = s.gg > 0 ? xg / s.gg : 0;
    f.error = xx - f.scale * xg;
  }
  f.error = std::max(0.0, f.error);
  return f;
}

// --- The sweep over inverse scales ---------------------------------------------------

// Best fit to y [n] (double, any sign) over the assignments y_i * t -> nearest
// grid value for t in [t_lo, t_hi], t_lo > 0. With an offset, y = x - anchor.
Fit sweep(const Grid& g, const double* y, const float* w, int n, double t_lo, double t_hi, bool offset,
          double anchor, bool non_positive, Scratch& s) {
  Sums sums;
  s.events.clear();
  const auto event = [](double t, int i, bool up) {
    return static_cast<uint64_t>(float_to_bits(static_cast<float>(t))) << 32 | static_cast<uint64_t>(i) << 1 |
           (up ? 1u : 0u);
  };
  for (int i = 0; i < n; ++i) {
    const int k = g.index_of(static_cast<float>(y[i] * t_lo));
    s.code[i] = k;
    sums.add(w[i], y[i], g.value(k));
    if (w[i] == 0 || y[i] == 0) continue;  // moves of an element without weight change nothing
    const double inv = 1.0 / y[i];
    if (y[i] > 0) {
      for (int kk = k; kk + 1 < g.size(); ++kk) {
        const double t = g.midpoint(kk) * inv;
        if (t > t_hi) break;
        s.events.push_back(event(t, i, true));
      }
    } else {
      for (int kk = k; kk > 0; --kk) {
        const double t = g.midpoint(kk - 1) * inv;
        if (t > t_hi) break;
        s.events.push_back(event(t, i, false));
      }
    }
  }
  std::sort(s.events.begin(), s.events.end());
  const auto solve = [&] { return offset ? solve_offset(sums, anchor, non_positive) : solve_scale(sums); };
  Fit best = solve();
  for (size_t e = 0; e < s.events.size(); ++e) {
    const uint64_t ev = s.events[e];
    const int j = static_cast<int>((ev >> 1) & 0x7FFFFFFF);
    const int k0 = s.code[j];
    const int k1 = k0 + ((ev & 1) ? 1 : -1);
    sums.move(w[j], y[j], g.value(k0), g.value(k1));
    s.code[j] = k1;
    // Moves at the same t make one new assignment together.
    if (e + 1 < s.events.size() && (s.events[e + 1] >> 32) == (ev >> 32)) continue;
    const Fit f = solve();
    if (f.error < best.error) best = f;
  }
  return best;
}

// The best fit among the assignments at inverse scales t = p / y_top, p the
// whole numbers in [t_lo, t_hi] * y_top: the largest element y_top on a grid
// value, or whole steps past the end of a uniform grid.
Fit sample_top_aligned(const Grid& g, const double* y, const float* w, int n, double y_top, double t_lo, double t_hi,
                       bool offset, double anchor, bool non_positive) {
  Sums base;  // the sums that do not depend on the assignment
  for (int i = 0; i < n; ++i) base.add(w[i], y[i], 0.0);
  Fit best;
  for (double p = std::ceil(t_lo * y_top); p <= t_hi * y_top; p += 1.0) {
    const double t = p / y_top;
    Sums sums = base;
    double sg = 0, sgg = 0, syg = 0;
    for (int i = 0; i < n; ++i) {
      const double q = g.value(g.index_of(static_cast<float>(y[i] * t)));
      const double wq = w[i] * q;
      sg += wq;
      sgg += wq * q;
      syg += wq * y[i];
    }
    sums.g = sg;
    sums.gg = sgg;
    sums.yg = syg;
    const Fit f = offset ? solve_offset(sums, anchor, non_positive) : solve_scale(sums);
    if (f.error < best.error) best = f;
  }
  return best;
}

// The fit over the assignments of inverse scales [t_lo, t_hi]: all of them, or
// the top-aligned ones; y_top > 0 is the magnitude of the largest weighted y.
Fit search_range(const Grid& g, const double* y, const float* w, int n, double y_top, double t_lo, double t_hi,
                 bool top_aligned, bool offset, double anchor, bool non_positive, Scratch& s) {
  if (top_aligned) return sample_top_aligned(g, y, w, n, y_top, t_lo, t_hi, offset, anchor, non_positive);
  return sweep(g, y, w, n, t_lo, t_hi, offset, anchor, non_positive, s);
}

// Lloyd steps for the offset fits: codes nearest the current fit, refit, while
// the error falls (at most `steps` times).
Fit refine_offset(const Grid& g, const float* x, const float* w, int n, Fit f, bool non_positive, int steps) {
  for (int it = 0; it < steps && f.scale > 0; ++it) {
    Sums sums;
    const double inv = 1.0 / f.scale;
    for (int i = 0; i < n; ++i) {
      const int k = g.index_of(static_cast<float>((x[i] - f.offset) * inv));
      sums.add(w[i], x[i], g.value(k));
    }
    const Fit next = solve_offset(sums, 0.0, non_positive);
    if (!(next.error < f.error)) break;
    f = next;
  }
  return f;
}

// Step 1: the continuous fit of one sub-block, x, w [n].
Fit fit_elements(const Grid& g, FitKind kind, SweepRange range, const float* x, const float* w, int n, Scratch& s) {
  if (kind == FitKind::kSymmetric) {
    Fit best{0, 0, 0};
    for (int i = 0; i < n; ++i) best.error += static_cast<double>(w[i]) * x[i] * x[i];
    int top = -1;  // the weighted element of largest magnitude (first of equals)
    for (int i = 0; i < n; ++i) {
      if (w[i] > 0 && (top < 0 || std::fabs(x[i]) > std::fabs(x[top]))) top = i;
    }
    if (top < 0 || x[top] == 0) return best;
    for (const int sign : {+1, -1}) {
      // On a grid symmetric about 0 (Q8_0) the negative scale mirrors the positive one exactly.
      if (sign < 0 && g.min() == -g.max()) continue;
      const double ym = sign * static_cast<double>(x[top]);
      const double end = ym > 0 ? g.max() : g.min();
      if (end * ym <= 0) continue;  // the grid has no values of this sign
      for (int i = 0; i < n; ++i) s.y[i] = sign * static_cast<double>(x[i]);
      const double t0 = end / ym;
      Fit f = search_range(g, s.y.data(), w, n, std::fabs(ym), t0 * range.lo, t0 * range.hi, range.top_aligned, false,
                           0.0, false, s);
      f.scale *= sign;
      if (f.error < best.error) best = f;
    }
    return best;
  }
  const bool non_positive = kind == FitKind::kNonPositiveOffset;
  // The range of the weighted elements: those without weight may be clipped.
  double lo = kInf, hi = -kInf;
  for (int i = 0; i < n; ++i) {
    if (w[i] > 0) {
      lo = std::min<double>(lo, x[i]);
      hi = std::max<double>(hi, x[i]);
    }
  }
  if (lo > hi) return {0, 0, 0};  // nothing weighted
  const double anchor = non_positive ? std::min(lo, 0.0) : lo;
  const double span = hi - anchor;
  if (span <= 0) {  // constant block at or below zero: the offset alone
    Fit f{0, anchor, 0};
    for (int i = 0; i < n; ++i) f.error += static_cast<double>(w[i]) * (x[i] - anchor) * (x[i] - anchor);
    return f;
  }
  for (int i = 0; i < n; ++i) s.y[i] = x[i] - anchor;
  const double t0 = g.max() / span;
  const Fit f = search_range(g, s.y.data(), w, n, span, t0 * range.lo, t0 * range.hi, range.top_aligned, true, anchor,
                             non_positive, s);
  return refine_offset(g, x, w, n, f, non_positive, 3);
}

// E of one sub-block under p, codes by rounding (the search's fast path; the
// final codes are nearest_code's). Values are the stored ones; the sum is kept
// in four float partial sums, enough for comparing headers of one block.
double sub_block_error(const Codec& c, const SubBlock& p, const float* x, const float* w, int n) {
  const Grid& g = *c.grid;
  const float off = c.has_offset() ? p.offset : 0.0f;
  float acc[4] = {0, 0, 0, 0};
  if (p.scale == 0) {
    const float v = stored_value(c, p, g.zero_code());
    for (int i = 0; i < n; ++i) acc[i % 4] += w[i] * (x[i] - v) * (x[i] - v);
  } else if (g.uniform()) {
    // Round to nearest even by the 1.5 * 2^23 trick: exact for |t| < 2^22, and t is clamped to the grid.
    constexpr float kMagic = 12582912.0f;
    const float inv = 1.0f / p.scale;
    const float lo = g.min(), hi = g.max();
    for (int i = 0; i < n; ++i) {
      const float t = std::min(std::max((x[i] - off) * inv, lo), hi);
      const float q = (t + kMagic) - kMagic;
      const float d = x[i] - (p.scale * q + off);
      acc[i % 4] += w[i] * d * d;
    }
  } else {
    const float inv = 1.0f / p.scale;
    for (int i = 0; i < n; ++i) {
      const float d = x[i] - stored_value(c, p, g.index_of((x[i] - off) * inv));
      acc[i % 4] += w[i] * d * d;
    }
  }
  return static_cast<double>(acc[0]) + acc[1] + acc[2] + acc[3];
}

// --- Single-level types ----------------------------------------------------------------

void choose_single(const Codec& c, const float* x, const float* w, Scratch& s, Header* h) {
  const Fit f = fit_elements(*c.grid, c.kind, c.range, x, w, c.sub_size, s);
  const uint16_t d0 = to_fp16(f.scale);
  const uint16_t m0 = c.has_offset() ? to_fp16(f.offset) : 0;
  const uint16_t ds[3] = {d0, fp16_step(d0, -1), fp16_step(d0, +1)};
  const uint16_t ms[3] = {m0, fp16_step(m0, -1), fp16_step(m0, +1)};
  const int n_m = c.has_offset() ? 3 : 1;
  double best = kInf;
  for (const uint16_t d : ds) {
    for (int im = 0; im < n_m; ++im) {
      const SubBlock p{fp16_to_float(d), fp16_to_float(ms[im])};
      const double e = sub_block_error(c, p, x, w, c.sub_size);
      if (e < best) {
        best = e;
        h->d = d;
        h->m = ms[im];
      }
    }
  }
}

// --- Two-level types ---------------------------------------------------------------------

struct TwoLevelFits {
  std::array<double, kMaxSubBlocks> scale{}, min{};  // min = -offset >= 0
  // Weights of the sub-scale rounding: E grows by a_j (ds)^2 when scale j moves
  // by ds (a_j = sum w g^2), and by b_j (dm)^2 when its min moves (b_j = sum w).
  std::array<float, kMaxSubBlocks> a{}, b{};
};

// Candidates for an fp16 super-block scale over values v [J] to be stored as
// integers in [lo, hi]: the weighted fit onto the integer grid, and the scale
// putting the largest |v| on the end of the range (their fp16 neighbours were
// tried too and changed E by under 0.1%). Returns how many were written to out
// (at most 2, repeats dropped).
int super_scale_candidates(const Grid& integers, const double* v, const float* weight, int J, Scratch& s,
                           uint16_t* out) {
  std::array<float, kMaxSubBlocks> vf{};
  int top = 0;
  for (int j = 0; j < J; ++j) {
    vf[j] = static_cast<float>(v[j]);
    if (std::fabs(vf[j]) > std::fabs(vf[top])) top = j;
  }
  if (vf[top] == 0) {
    out[0] = 0;
    return 1;
  }
  // Inverse scales down to where the largest value has crossed 16 integers: all
  // of the range for 4-bit sub-scales, its top for int8 ones (cost ~ J * 16 moves).
  const double reach = std::max(std::fabs(integers.min()), std::fabs(integers.max()));
  const SweepRange range{std::max(0.05, 1.0 - 16.0 / reach), 1.0};
  const Fit f = fit_elements(integers, FitKind::kSymmetric, range, vf.data(), weight, J, s);
  uint16_t cand[2];
  cand[0] = to_fp16(f.scale);
  const double end = vf[top] > 0 ? (integers.max() > 0 ? integers.max() : integers.min())
                                 : (integers.min() < 0 ? integers.min() : integers.max());
  cand[1] = to_fp16(vf[top] / end);
  int n = 0;
  for (const uint16_t h : cand) {
    if (std::find(out, out + n, h) == out + n) out[n++] = h;
  }
  return n;
}

// The best integer scale (and min) of every sub-block for super-block d (and
// dmin), each trying its rounded value and the neighbours +-1; fills h's sc/mn
// and returns E of the block.
double choose_sub_scales(const Codec& c, const TwoLevelFits& fits, uint16_t d_bits, uint16_t dmin_bits,
                         const float* x, const float* w, Header* h) {
  const float d = fp16_to_float(d_bits);
  const float dmin = fp16_to_float(dmin_bits);
  const bool mins = c.has_offset();
  const int sc_lo = static_cast<int>(c.sub_scales->min());
  const int sc_hi = static_cast<int>(c.sub_scales->max());
  const int mn_hi = mins ? static_cast<int>(c.sub_mins->max()) : 0;
  double total = 0;
  for (int j = 0; j < c.sub_blocks; ++j) {
    const float* xj = x + j * c.sub_size;
    const float* wj = w + j * c.sub_size;
    const int l0 = d != 0 ? std::clamp(round_small(static_cast<float>(
                                           std::clamp(fits.scale[j] / d, -1024.0, 1024.0))),
                                       sc_lo, sc_hi)
                          : std::clamp(0, sc_lo, sc_hi);
    const int m0 = mins && dmin > 0 ? std::clamp(round_small(static_cast<float>(
                                                     std::clamp(fits.min[j] / dmin, -1024.0, 1024.0))),
                                                 0, mn_hi)
                                    : 0;
    double best = kInf;
    for (const int dl : {0, -1, +1}) {
      const int l = l0 + dl;
      if (l < sc_lo || l > sc_hi || (dl != 0 && d == 0)) continue;
      for (const int dm : {0, -1, +1}) {
        const int m = m0 + dm;
        if (m < 0 || m > mn_hi || (dm != 0 && (!mins || dmin == 0))) continue;
        const SubBlock p{d * static_cast<float>(l), -(dmin * static_cast<float>(m))};
        const double e = sub_block_error(c, p, xj, wj, c.sub_size);
        if (e < best) {
          best = e;
          h->sc[j] = static_cast<int16_t>(l);
          h->mn[j] = static_cast<uint8_t>(m);
        }
      }
    }
    total += best;
  }
  h->d = d_bits;
  h->m = dmin_bits;
  return total;
}

// Least-squares d (and dmin) for the integers of h and the codes nearest its
// values: v_i = d * (sc_j g_i) - dmin * mn_j is linear in (d, dmin).
void refit_super_scales(const Codec& c, const Header& h, const float* x, const float* w, double* d, double* dmin) {
  std::array<SubBlock, kMaxSubBlocks> p{};
  sub_blocks_of(c, h, p.data());
  double aa = 0, ab = 0, bb = 0, ax = 0, bx = 0;
  for (int j = 0; j < c.sub_blocks; ++j) {
    for (int i = 0; i < c.sub_size; ++i) {
      const int e = j * c.sub_size + i;
      const double a = static_cast<double>(h.sc[j]) * c.grid->value(nearest_code(c, p[j], x[e]));
      const double b = -static_cast<double>(h.mn[j]);
      aa += w[e] * a * a;
      ab += w[e] * a * b;
      bb += w[e] * b * b;
      ax += w[e] * a * x[e];
      bx += w[e] * b * x[e];
    }
  }
  *d = fp16_to_float(h.d);
  *dmin = fp16_to_float(h.m);
  if (!c.has_offset() || bb == 0) {
    if (aa > 0) *d = ax / aa;
    return;
  }
  const double det = aa * bb - ab * ab;
  if (det <= 1e-12 * aa * bb) return;
  *d = (ax * bb - bx * ab) / det;
  *dmin = std::max(0.0, (aa * bx - ab * ax) / det);
}

void choose_two_level(const Codec& c, const float* x, const float* w, Scratch& s, Header* h) {
  TwoLevelFits fits;
  const FitKind element_kind = c.has_offset() ? FitKind::kNonPositiveOffset : FitKind::kSymmetric;
  for (int j = 0; j < c.sub_blocks; ++j) {
    const float* xj = x + j * c.sub_size;
    const float* wj = w + j * c.sub_size;
    double wsum = 0;
    for (int i = 0; i < c.sub_size; ++i) wsum += wj[i];
    // A sub-block without weight adds nothing to E whatever it stores; it is fitted
    // with unit weights so that it still stores something close.
    const float* fit_w = wsum > 0 ? wj : s.unit_weights.data();
    const Fit f = fit_elements(*c.grid, element_kind, c.range, xj, fit_w, c.sub_size, s);
    fits.scale[j] = f.scale;
    fits.min[j] = -f.offset;
    double a = 0;
    const SubBlock p{static_cast<float>(f.scale), static_cast<float>(f.offset)};
    for (int i = 0; i < c.sub_size; ++i) {
      const double gv = f.scale != 0 ? c.grid->value(nearest_code(c, p, xj[i])) : 0.0;
      a += wj[i] * gv * gv;
    }
    fits.a[j] = static_cast<float>(a);
    fits.b[j] = static_cast<float>(wsum);
  }

  uint16_t d_cand[2], m_cand[2];
  const int n_d = super_scale_candidates(*c.sub_scales, fits.scale.data(), fits.a.data(), c.sub_blocks, s, d_cand);
  int n_m = 1;
  m_cand[0] = 0;
  if (c.has_offset()) {
    n_m = super_scale_candidates(*c.sub_mins, fits.min.data(), fits.b.data(), c.sub_blocks, s, m_cand);
  }

  // d first with the first dmin candidate, then dmin with the best d.
  Header best_h, trial;
  double best = kInf;
  for (int i = 0; i < n_d; ++i) {
    const double e = choose_sub_scales(c, fits, d_cand[i], m_cand[0], x, w, &trial);
    if (e < best) {
      best = e;
      best_h = trial;
    }
  }
  for (int i = 1; i < n_m; ++i) {
    const double e = choose_sub_scales(c, fits, best_h.d, m_cand[i], x, w, &trial);
    if (e < best) {
      best = e;
      best_h = trial;
    }
  }
  double d = 0, dmin = 0;
  refit_super_scales(c, best_h, x, w, &d, &dmin);
  const uint16_t d_bits = to_fp16(d);
  const uint16_t dmin_bits = c.has_offset() ? to_fp16(dmin) : 0;
  if (d_bits != best_h.d || dmin_bits != best_h.m) {
    const double e = choose_sub_scales(c, fits, d_bits, dmin_bits, x, w, &trial);
    if (e < best) best_h = trial;
  }
  *h = best_h;
}

}  // namespace

Grid::Grid(std::vector<float> values) : values_(std::move(values)) {
  uniform_ = true;
  for (size_t k = 0; k + 1 < values_.size(); ++k) {
    mid_.push_back(0.5f * (values_[k] + values_[k + 1]));
    uniform_ = uniform_ && values_[k + 1] - values_[k] == 1.0f;
  }
  for (size_t k = 1; k < values_.size(); ++k) {
    if (std::fabs(values_[k]) < std::fabs(values_[zero_code_])) zero_code_ = static_cast<int>(k);
  }
}

Grid integer_grid(int lo, int hi) {
  std::vector<float> v;
  for (int l = lo; l <= hi; ++l) v.push_back(static_cast<float>(l));
  return Grid(std::move(v));
}

void choose_header(const Codec& c, const float* x, const float* w, Scratch& s, Header* h) {
  *h = Header{};
  if (c.sub_blocks == 1) {
    choose_single(c, x, w, s, h);
  } else {
    choose_two_level(c, x, w, s, h);
  }
}

void sub_blocks_of(const Codec& c, const Header& h, SubBlock* out) {
  const float d = fp16_to_float(h.d);
  const float m = fp16_to_float(h.m);
  if (c.sub_blocks == 1) {
    out[0] = {d, m};
    return;
  }
  for (int j = 0; j < c.sub_blocks; ++j) {
    out[j].scale = d * static_cast<float>(h.sc[j]);
    out[j].offset = -(m * static_cast<float>(h.mn[j]));
  }
}

int nearest_code(const Codec& c, const SubBlock& p, float x) {
  const Grid& g = *c.grid;
  if (p.scale == 0 || !(x == x)) return g.zero_code();
  const float t = (x - (c.has_offset() ? p.offset : 0.0f)) / p.scale;
  const int k0 = g.index_of(t);
  int best = -1;
  double best_err = kInf;
  for (int k = std::max(0, k0 - 1); k <= std::min(g.size() - 1, k0 + 1); ++k) {
    const double err = std::fabs(static_cast<double>(x) - stored_value(c, p, k));
    if (err < best_err) {
      best_err = err;
      best = k;
    }
  }
  return best;
}

}  // namespace lowbit::gguf_codec
