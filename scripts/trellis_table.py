#!/usr/bin/env python3
"""Prints kTrellisTable of src/formats/trellis_code.h: the trellis codebook.

The 64 Gaussian quantiles round(126 * Phi^-1((i + 0.5) / 64) / Phi^-1(63.5 / 64)),
i < 64 (so the extremes are -126 and 126), in the order of a Fisher-Yates shuffle
driven by splitmix64 seeded 20261207 (for i = 63 down to 1: j = next() % (i + 1),
swap). The shuffle decorrelates neighbouring hash indices from neighbouring values.
Pure Python (statistics.NormalDist), no arguments.
"""
import statistics

MASK = (1 << 64) - 1
SEED = 20261207
SIZE = 64
VMAX = 126


def splitmix64(seed):
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        yield z ^ (z >> 31)


def table():
    inv = statistics.NormalDist().inv_cdf
    top = inv((SIZE - 0.5) / SIZE)
    values = [round(VMAX * inv((i + 0.5) / SIZE) / top) for i in range(SIZE)]
    rng = splitmix64(SEED)
    for i in range(SIZE - 1, 0, -1):
        j = next(rng) % (i + 1)
        values[i], values[j] = values[j], values[i]
    return values


def main():
    t = table()
    rms = (sum(v * v for v in t) / len(t)) ** 0.5
    print(f"// {len(t)} entries, min {min(t)}, max {max(t)}, RMS {rms:.2f}")
    print("{" + ", ".join(str(v) for v in t) + "}")


if __name__ == "__main__":
    main()
