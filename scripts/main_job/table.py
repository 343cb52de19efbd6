#!/usr/bin/env python3
"""Prints the main job's comparison table from the JSON reports it wrote.

Usage: table.py WORK MODEL_NAME MODEL_PATH TEXT CHUNKS THREADS
WORK holds, per row ID: ID.ppl.json and ID.bench.json (lowbit ppl/bench --json),
ID.quantize.json (lowbit quantize --json, absent for the reference) and
ID.seconds (wall time of the quantize step).
"""
import json
import os
import sys

ROWS = [  # id, file in WORK, what it is
    ("reference", "reference.gguf", "FP32 reference (derived, same function as the shipped file)"),
    ("q8_0-rtn", "q8_0-rtn.lowbit", "GGUF Q8_0, round to nearest (data-free)"),
    ("w4g128-rtn", "w4g128-rtn.lowbit", "INT4 groups of 128, round to nearest (data-free)"),
    ("q4_0-gptq", "q4_0-gptq.lowbit", "GGUF Q4_0 linears by GPTQ, Q8_0 embedding/head (calibrated)"),
    ("mixed", "mixed.gguf", "size-budgeted mix of llama.cpp types at q4_0-gptq's size, exported to GGUF"),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def bits_per_weight(quantize_report):
    """Stored bits per parameter over every quantized module (linears, embedding, head)."""
    modules = quantize_report["modules"]
    bits = sum(m["stored_bytes"] for m in modules) * 8
    params = sum(m["shape"][0] * m["shape"][1] for m in modules)
    return bits / params


def main():
    work, name, model, text, chunks, threads = sys.argv[1:7]
    header = ["recipe", "file MB", "bits/weight", "PPL", "KLD", "same top-1", "prompt tok/s", "decode tok/s", "quantize s"]
    lines = []
    for row_id, file_name, _ in ROWS:
        ppl = load(os.path.join(work, f"{row_id}.ppl.json"))
        bench = load(os.path.join(work, f"{row_id}.bench.json"))
        size_mb = os.path.getsize(os.path.join(work, file_name)) / 1e6
        if row_id == "reference":
            bpw, kld, top1, seconds = "32", "0 (itself)", "100%", "-"
        else:
            report_id = "mixed" if row_id == "mixed" else row_id
            bpw = f"{bits_per_weight(load(os.path.join(work, f'{report_id}.quantize.json'))):.3f}"
            kld = f"{ppl['kld_mean']:.3g} ± {ppl['kld_stderr']:.2g}"
            top1 = f"{100 * ppl['top1_agree']:.1f}%"
            with open(os.path.join(work, f"{report_id}.seconds")) as f:
                seconds = f"{float(f.read()):.0f}"
        lines.append([row_id, f"{size_mb:.1f}", bpw, f"{ppl['ppl']:.3f} ± {ppl['ppl_stderr']:.3f}", kld, top1,
                      f"{bench['pp_tps']:.0f}", f"{bench['tg_tps']:.1f}", seconds])
    widths = [max(len(str(r[i])) for r in [header] + lines) for i in range(len(header))]
    print()
    print(f"{name}: quantized with lowbit, evaluated against the FP32 reference")
    print(f"  PPL/KLD: {os.path.basename(text)}, ctx 512, {chunks} chunks (llama.cpp protocol); speed: lowbit bench -p 128 -n 32, "
          f"median of 3, {threads} threads; quantize s: wall time of the quantize command")
    print()
    fmt = "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(fmt.format(*header))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt.format(*line))
    print()
    for row_id, _, what in ROWS:
        print(f"  {row_id:<11} {what}")
    print("\n  Speed: lowbit runs INT4/INT8/FP4 recipes on packed kernels; llama.cpp's block types (q8_0, q4_0, the mix)"
          "\n  run dequantized to FP32 in lowbit for now (llama.cpp runs those files natively).")
    derive = os.path.join(work, "reference.kld.json")
    if os.path.exists(derive):
        d = load(derive)
        print(f"\n  reference vs the shipped {os.path.basename(model)}: KLD {d['kld_mean']:.2e}, same top-1 {100 * d['top1_agree']:.2f}%")


if __name__ == "__main__":
    main()
