#!/usr/bin/env python3
"""Writes the README's recipe and format tables from what the lowbit binary prints,
so they cannot drift from the code.

Usage: scripts/readme_tables.py [--check] [--lowbit build/lowbit] [--readme README.md]
Rewrites each block between `<!-- generated: NAME -->` and `<!-- end generated -->`
(NAME: recipes, formats). With --check it changes nothing and exits 1 when a block
differs from what the binary prints now (the test suite runs it so).
"""
import argparse
import os
import re
import subprocess
import sys
import textwrap


def run(lowbit, *args):
    return subprocess.run([lowbit, *args], check=True, capture_output=True, text=True).stdout


def columns(line):
    """A row of the CLI's aligned tables: fields are separated by two or more spaces."""
    return re.split(r"\s{2,}", line.strip())


def recipes_block(lowbit):
    out = run(lowbit, "quantize", "--list-recipes")
    rows = []
    for line in out.splitlines():
        if not line.startswith("  ") or line.strip().startswith("name "):
            continue
        name, linears, model, size_mb, act, calib, description = columns(line)
        weight_bits = f"{float(linears):.2f}"
        act_bits = "-" if float(act) == 32 else f"{float(act):.2f}"
        rows.append(f"| `{name}` | {weight_bits} | {act_bits} | {calib} | {description} |")
    head = ["| recipe | weight bits (linears) | activation bits | needs calibration | what it does |",
            "|---|---|---|---|---|"]
    return "\n".join(head + rows)


def formats_block(lowbit):
    out = run(lowbit, "formats", "--list")
    scaled, element, section = [], [], None
    for line in out.splitlines():
        if line.startswith("Scaled formats"):
            section = scaled
        elif line.startswith("Element formats"):
            section = element
        elif line.startswith("  ") and section is not None and not line.strip().startswith("name "):
            fields = columns(line)
            section.append((fields[0], fields[1]))

    def wrapped(items):
        # A non-breaking space keeps each name with its bits when wrapping.
        text = ", ".join(f"`{name}`\u00a0({bits})" for name, bits in items)
        lines = textwrap.wrap(text, width=100, break_on_hyphens=False, break_long_words=False)
        return "\n".join(lines).replace("\u00a0", " ")

    scaled_bits = [(n, f"{float(b):.2f}") for n, b in scaled]
    return (f"**{len(element)} element formats** (bits per element):\n{wrapped(element)}\n\n"
            f"**{len(scaled)} scaled formats** (bits per element with scales, on a 4096×4096 matrix):\n"
            f"{wrapped(scaled_bits)}")


BLOCKS = {"recipes": recipes_block, "formats": formats_block}
PATTERN = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--lowbit", default="build/lowbit")
    parser.add_argument("--readme", default="README.md")
    args = parser.parse_args()
    with open(args.readme) as f:
        readme = f.read()
    stale = []

    def replace(match):
        name = match.group(2)
        if name not in BLOCKS:
            sys.exit(f"readme_tables: {args.readme}: unknown generated block '{name}' (known: {', '.join(BLOCKS)})")
        block = BLOCKS[name](args.lowbit) + "\n"
        if block != match.group(3):
            stale.append(name)
        return match.group(1) + block + match.group(4)

    updated, count = PATTERN.subn(replace, readme)
    if count != len(BLOCKS):
        sys.exit(f"readme_tables: {args.readme}: found {count} generated blocks, expected {len(BLOCKS)}")
    if args.check:
        if stale:
            sys.exit(f"readme_tables: {args.readme}: blocks {', '.join(stale)} differ from {args.lowbit}; "
                     f"run scripts/readme_tables.py")
        return
    with open(args.readme + ".tmp", "w") as f:
        f.write(updated)

    os.replace(args.readme + ".tmp", args.readme)


if __name__ == "__main__":
    main()
