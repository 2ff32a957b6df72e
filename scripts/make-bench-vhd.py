#!/usr/bin/env python3
"""Writes a sparse dynamic VHD for benchmarks: SIZE_GIB virtual, BLOCKS allocated 2 MiB blocks chosen
pseudo-randomly (fixed seed), each with a PARTIAL sector bitmap (a few runs of marked sectors) and data
only in the marked sectors. Written from the VHD specification (footer, dynamic header, BAT, blocks).

usage: make-bench-vhd.py OUT.vhd [SIZE_GIB=2000] [BLOCKS=100000] [SEED=42]
"""
import random
import struct
import sys
import time
import uuid

SECTOR = 512
BLOCK = 2 << 20


def checksum(data: bytes) -> int:
    return (~sum(data)) & 0xFFFFFFFF


def footer(size: int, data_offset: int, disk_id: bytes) -> bytes:
    # CHS per the spec's algorithm, capped at 65535/16/255.
    sectors = min(size // SECTOR, 65535 * 16 * 255)
    if sectors >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = sectors // spt
    else:
        spt = 17
        cth = sectors // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads, cth = 31, 16, sectors // 31
        if cth >= heads * 1024:
            spt, heads, cth = 63, 16, sectors // 63
    cyl = cth // heads
    body = struct.pack(">8sIIQI4sI4sQQHBBII16sB427x", b"conectix", 2, 0x00010000, data_offset,
                       int(time.time()) - 946684800, b"extd", 0x00010000, b"Wi2k", size, size,
                       cyl, heads, spt, 3, 0, disk_id, 0)
    return body[:64] + struct.pack(">I", checksum(body)) + body[68:]


def main() -> None:
    out = sys.argv[1]
    size = int(sys.argv[2] if len(sys.argv) > 2 else 2000) << 30
    blocks = int(sys.argv[3] if len(sys.argv) > 3 else 100000)
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
    entries = (size + BLOCK - 1) // BLOCK
    table_offset = 512 + 1024
    bat_bytes = (entries * 4 + SECTOR - 1) // SECTOR * SECTOR
    bitmap_bytes = SECTOR  # 4096 sectors per 2 MiB block -> 512 bytes
    disk_id = uuid.UUID(int=rng.getrandbits(128)).bytes
    chosen = sorted(rng.sample(range(entries), blocks))
    bat = [0xFFFFFFFF] * entries
    position = table_offset + bat_bytes
    with open(out, "wb") as f:
        f.truncate(0)
        for index in chosen:
            bat[index] = position // SECTOR
            bitmap = bytearray(bitmap_bytes)
            # Two to four runs of marked sectors per block.
            for _ in range(rng.randint(2, 4)):
                start = rng.randrange(0, 4096 - 64)
                length = rng.randint(1, 64)
                for sector in range(start, start + length):
                    bitmap[sector >> 3] |= 0x80 >> (sector & 7)
                f.seek(position + bitmap_bytes + start * SECTOR)
                f.write(bytes([index & 0xFF | 1]) * (length * SECTOR))
            f.seek(position)
            f.write(bitmap)
            position += bitmap_bytes + BLOCK
        header = struct.pack(">8sQQIIII16sI4x512s", b"cxsparse", 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000,
                             entries, BLOCK, 0, bytes(16), 0, bytes(512)) + bytes(8 * 24 + 256)
        header = header[:36] + struct.pack(">I", checksum(header)) + header[40:]
        foot = footer(size, 512, disk_id)
        f.seek(0)
        f.write(foot + header)
        f.write(struct.pack(">%dI" % entries, *bat))
        f.seek(position)
        f.write(foot)


if __name__ == "__main__":
    main()
