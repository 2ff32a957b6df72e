#!/usr/bin/env python3
"""Prints a fuzz input (a crash from Fuzz/artifacts/) as Swift for Tests/ScannerTests/FuzzRegressionTests.swift.

Usage: scripts/fuzz-input-to-swift.py TARGET FILE

For qcow2/vhd inputs (a 24-bit length, the first file, then the second) each file becomes a size plus its
non-zero stretches, as `.bytes(offset, "hex")` or, for one byte repeated, `.fill(offset, byte, count)`.
"""
import sys

NAMES = {"qcow2": ("disk.qcow2", "base"), "vhd": ("disk.vhd", "parent.vhd")}


def pieces(data):
    out, i = [], 0
    while i < len(data):
        if data[i] == 0:
            i += 1
            continue
        j = i
        while j < len(data) and (data[j] != 0 or any(data[j:j + 8])):
            j += 1
        chunk = data[i:j]
        if len(chunk) > 16 and len(set(chunk)) == 1:
            out.append(f".fill({i}, 0x{chunk[0]:02x}, {len(chunk)})")
        else:
            out.append(f'.bytes({i}, "{chunk.hex()}")')
        i = j
    return out


def main():
    target, path = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    length = int.from_bytes(data[:3], "big")
    files = [data[3:3 + length], data[3 + length:]]
    for name, content in zip(NAMES[target], files):
        if not content:
            continue
        print(f'FuzzFile(name: "{name}", size: {len(content)}, pieces: [')
        for piece in pieces(content):
            print(f"    {piece},")
        print("]),")


if __name__ == "__main__":
    main()
