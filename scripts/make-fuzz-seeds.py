#!/usr/bin/env python3
"""Writes seed corpora for the fuzz harnesses in Fuzz/ (see scripts/fuzz.sh).

Usage: scripts/make-fuzz-seeds.py OUTDIR

OUTDIR/qcow2, OUTDIR/vhd, OUTDIR/extent-runs and OUTDIR/nbd each receive a few small inputs (kilobytes). QCOW2
seeds come from qemu-img/qemu-io (small clusters keep them small); VHD seeds are built here, field by field, since
qemu cannot write differencing disks or small blocks; extent-run seeds are encoded here like ExtentRunCodec does;
NBD seeds are client conversations built field by field from the NBD specification (doc/proto.md).
Inputs holding two files start with the first file's length as a 24-bit big-endian number.
"""
import os
import struct
import subprocess
import sys
import tempfile
import uuid


def two_files(first, second=b""):
    return len(first).to_bytes(3, "big") + first + second


# --- QCOW2 -------------------------------------------------------------------------------------------------

def qcow2_seeds(out):
    with tempfile.TemporaryDirectory() as work:
        def sh(*args):
            subprocess.run(args, cwd=work, check=True, stdout=subprocess.DEVNULL)

        def image(name):
            with open(os.path.join(work, name), "rb") as f:
                return f.read()

        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "empty.qcow2", "1M")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "data.qcow2", "1M")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 4k", "-c", "write -z 64k 8k", "-c", "write -P 2 900k 1k",
           "-c", "write -c -P 3 512k 512", "data.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512,compat=0.10", "v2.qcow2", "256k")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 5 1k 2k", "v2.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512,compression_type=zstd", "zstd.qcow2", "256k")
        sh("qemu-io", "-f", "qcow2", "-c", "write -c -P 6 0 512", "zstd.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "snap.qcow2", "256k")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 7 0 1k", "snap.qcow2")
        sh("qemu-img", "snapshot", "-c", "first", "snap.qcow2")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 8 0 512", "snap.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=16k,extended_l2=on", "ext.qcow2", "1M")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 9 0 1k", "-c", "write -z 4k 1k", "ext.qcow2")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "base", "256k")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 10 0 4k", "base")
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "-b", "base", "-F", "qcow2", "top.qcow2", "256k")
        sh("qemu-io", "-f", "qcow2", "-c", "write -P 11 1k 1k", "top.qcow2")
        with open(os.path.join(work, "rawbase"), "wb") as f:
            f.write(b"\x42" * 4096)
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "-b", "rawbase", "-F", "raw", "overraw.qcow2", "4k")
        for name in ["empty.qcow2", "data.qcow2", "v2.qcow2", "zstd.qcow2", "snap.qcow2", "ext.qcow2"]:
            write(out, name, two_files(image(name)))
        write(out, "chain.qcow2", two_files(image("top.qcow2"), image("base")))
        # The backing name is "rawbase"; the harness writes the second file as "base", so rename in the header.
        over = bytearray(image("overraw.qcow2"))
        name_offset, name_size = struct.unpack(">QI", over[8:20])
        over[name_offset:name_offset + name_size] = b"base".ljust(name_size, b"\0")[:name_size]
        over[16:20] = struct.pack(">I", 4)
        write(out, "over-raw.qcow2", two_files(bytes(over), image("rawbase")))


# --- VHD ---------------------------------------------------------------------------------------------------

def checksum(data, at):
    total = sum(b for i, b in enumerate(data) if not at <= i < at + 4)
    return (~total) & 0xFFFFFFFF


def footer(disk_type, size, data_offset, unique_id):
    f = bytearray(512)
    f[0:8] = b"conectix"
    struct.pack_into(">IIQI", f, 8, 2, 0x00010000, data_offset, 0)
    f[28:32] = b"fuzz"
    struct.pack_into(">I", f, 32, 0x00010000)
    f[36:40] = b"Wi2k"
    struct.pack_into(">QQHBBI", f, 40, size, size, 1024, 16, 63, disk_type)
    f[68:84] = unique_id
    struct.pack_into(">I", f, 64, checksum(f, 64))
    return bytes(f)


def vhd(size, block_size=4096, sectors=(), kind="dynamic", parent=None, locators=()):
    """A dynamic (or differencing) VHD with `sectors` (sector numbers) marked and filled."""
    unique_id = uuid.uuid4().bytes
    if kind == "fixed":
        return bytes(size) + footer(2, size, 0xFFFFFFFFFFFFFFFF, unique_id), unique_id
    blocks = (size + block_size - 1) // block_size
    bitmap_bytes = ((block_size // 512 + 7) // 8 + 511) // 512 * 512
    locator_data = [(code, path.encode("utf-16-le") if code.startswith("W2") else path.encode()) for code, path in locators]
    offset = 512 + 1024
    placed = []
    for code, data in locator_data:
        space = (len(data) + 511) // 512 * 512
        placed.append((code, data, offset, space))
        offset += space
    bat_offset = offset
    offset += (blocks * 4 + 511) // 512 * 512
    by_block = {}
    for sector in sectors:
        by_block.setdefault(sector * 512 // block_size, []).append(sector % (block_size // 512))
    bat = [0xFFFFFFFF] * blocks
    body = bytearray()
    for block in sorted(by_block):
        bat[block] = (offset + len(body)) // 512
        bitmap = bytearray(bitmap_bytes)
        data = bytearray(block_size)
        for s in by_block[block]:
            bitmap[s // 8] |= 0x80 >> (s % 8)
            data[s * 512:(s + 1) * 512] = bytes([s + 1]) * 512
        body += bitmap + data
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, bat_offset, 0x00010000, blocks, block_size)
    if parent is not None:
        header[40:56] = parent
        name = "parent.vhd".encode("utf-16-be")
        header[64:64 + len(name)] = name
    for index, (code, data, where, space) in enumerate(placed):
        struct.pack_into(">4sIIIQ", header, 576 + 24 * index, code.encode(), space, len(data), 0, where)
    struct.pack_into(">I", header, 36, checksum(header, 36))
    copy = footer(4 if parent is not None else 3, size, 512, unique_id)
    out = bytearray(copy + header)
    for code, data, where, space in placed:
        out += data.ljust(space, b"\0")
    out += b"".join(struct.pack(">I", e) for e in bat).ljust((blocks * 4 + 511) // 512 * 512, b"\xff")
    out += body + copy
    return bytes(out), unique_id


def vhd_seeds(out):
    empty, _ = vhd(64 * 1024)
    write(out, "empty.vhd", two_files(empty))
    data, _ = vhd(64 * 1024, sectors=[0, 1, 2, 9, 40, 127])
    write(out, "data.vhd", two_files(data))
    big_block, _ = vhd(1 << 20, block_size=64 * 1024, sectors=[3])
    write(out, "bigblock.vhd", two_files(big_block))
    fixed, _ = vhd(16 * 1024, kind="fixed")
    write(out, "fixed.vhd", two_files(fixed))
    parent, parent_id = vhd(64 * 1024, sectors=[0, 5, 64])
    child, _ = vhd(64 * 1024, sectors=[5, 6, 100], parent=parent_id,
                   locators=[("W2ru", ".\\parent.vhd"), ("W2ku", "C:\\vm\\parent.vhd"), ("MacX", "file://./parent.vhd")])
    write(out, "chain.vhd", two_files(child, parent))


# --- extent runs -------------------------------------------------------------------------------------------

def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_runs(extents):
    """extents: (length, flags, depth, offset or None, (host, count) or None), as ExtentRunCodec writes them."""
    blob = bytearray()
    predicted = 0
    for length, flags, depth, offset, descriptor in extents:
        flags |= (0x10 if offset is not None else 0) | (0x20 if descriptor else 0)
        blob += varint(length) + bytes([flags]) + varint(depth)
        if offset is not None:
            delta = (offset - predicted) & 0xFFFFFFFFFFFFFFFF
            signed = delta - (1 << 64) if delta >= 1 << 63 else delta
            blob += varint(((signed << 1) ^ (signed >> 63)) & 0xFFFFFFFFFFFFFFFF)
            predicted = (offset + length) & 0xFFFFFFFFFFFFFFFF
        if descriptor:
            blob += varint(descriptor[0]) + varint(descriptor[1])
    return blob


def extent_seeds(out):
    lists = {
        "data-zero-hole": [(65536, 0x05, 0, 327680, None), (65536, 0x03, 0, None, None), (1 << 20, 0x00, 1, None, None)],
        "compressed": [(65536, 0x0D, 0, None, (2 << 20, 3000)), (65536, 0x0D, 0, None, ((2 << 20) + 3000, 512))],
        "backwards": [(4096, 0x05, 2, 1 << 30, None), (4096, 0x05, 2, 4096, None), (512, 0x07, 0, 0, None)],
    }
    for name, extents in lists.items():
        write(out, name, struct.pack(">HQ", len(extents), 1 << 20) + encode_runs(extents))


# --- NBD ---------------------------------------------------------------------------------------------------
# doc/proto.md of NetworkBlockDevice/nbd; every integer is big-endian.

IHAVEOPT = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED_REPLY, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_EXTENDED_HEADERS = 8, 9, 10, 11
INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = 0, 1, 2, 3, 4, 5, 6, 7
CMD_FLAG_FUA, CMD_FLAG_REQ_ONE = 1, 8


def nbd_string(text):
    data = text.encode()
    return struct.pack(">I", len(data)) + data


def nbd_option(code, data=b""):
    """IHAVEOPT, option code, data length, data (§Option haggling)."""
    return struct.pack(">QII", IHAVEOPT, code, len(data)) + data


def nbd_go(code=OPT_GO, name="", infos=(INFO_BLOCK_SIZE,)):
    """NBD_OPT_GO / NBD_OPT_INFO: name length, name, request count, info types."""
    return nbd_option(code, nbd_string(name) + struct.pack(">H", len(infos)) + b"".join(struct.pack(">H", i) for i in infos))


def nbd_meta(code, queries, name=""):
    """NBD_OPT_{LIST,SET}_META_CONTEXT: name length, export name, query count, queries (each length and name)."""
    return nbd_option(code, nbd_string(name) + struct.pack(">I", len(queries)) + b"".join(nbd_string(q) for q in queries))


def nbd_request(command, cookie, offset=0, length=0, flags=0):
    """magic, command flags, type, cookie, offset, length: 28 bytes (§Request message)."""
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, cookie, offset, length)


def nbd_input(chunk, size_shift, *parts):
    """The harness's header: chunk size - 1, export size as a power of two; then the client's stream."""
    return bytes([chunk - 1, size_shift]) + b"".join(parts)


def nbd_seeds(out):
    flags = struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
    requests = [
        nbd_request(CMD_READ, 1, 4096, 65536),
        nbd_request(CMD_WRITE, 2, 0, 700) + b"\xab" * 700,
        nbd_request(CMD_BLOCK_STATUS, 3, 0, 1 << 20, CMD_FLAG_REQ_ONE),
        nbd_request(CMD_BLOCK_STATUS, 4, 512, (1 << 20) - 512),
        nbd_request(CMD_FLUSH, 5),
        nbd_request(CMD_TRIM, 6, 0, 4096, CMD_FLAG_FUA),
        nbd_request(CMD_CACHE, 7, 0, 4096),
        nbd_request(CMD_WRITE_ZEROES, 8, 0, 4096),
        nbd_request(CMD_READ, 9, (1 << 20) - 1, 2),
        nbd_request(CMD_READ, 10, 0, 33 << 20),
    ]
    # nbdcopy / qemu-img: structured replies, both contexts, list, GO, then requests.
    write(out, "nbdcopy", nbd_input(7, 20, flags, nbd_option(OPT_STRUCTURED_REPLY),
                                    nbd_meta(OPT_SET_META_CONTEXT, ["base:allocation", "qemu:allocation-depth"]),
                                    nbd_option(OPT_LIST), nbd_go(), *requests, nbd_request(CMD_DISC, 11)))
    # INFO before GO, several info types, meta-context listing by namespace and in full.
    write(out, "info-then-go", nbd_input(1, 30, flags, nbd_go(OPT_INFO, "", (INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE)),
                                         nbd_go(OPT_INFO, "other"), nbd_meta(OPT_LIST_META_CONTEXT, ["qemu:"]),
                                         nbd_meta(OPT_LIST_META_CONTEXT, []), nbd_option(OPT_STRUCTURED_REPLY),
                                         nbd_meta(OPT_SET_META_CONTEXT, ["base:allocation", "base:allocation", "nope:x"]),
                                         nbd_go(OPT_GO, "", ()), nbd_request(CMD_BLOCK_STATUS, 1, 0, 4096),
                                         nbd_request(CMD_DISC, 2)))
    # Old-style NBD_OPT_EXPORT_NAME without NO_ZEROES (124 zeroes answered), then reads.
    write(out, "export-name", nbd_input(256, 16, struct.pack(">I", FLAG_FIXED_NEWSTYLE), nbd_option(OPT_EXPORT_NAME, b""),
                                        nbd_request(CMD_READ, 1, 0, 512), nbd_request(CMD_READ, 2, 65535, 1),
                                        nbd_request(CMD_DISC, 3)))
    # Options refused: unsupported, invalid payloads, SET before structured replies, an oversized option.
    write(out, "refusals", nbd_input(64, 40, flags, nbd_option(OPT_STARTTLS), nbd_option(OPT_EXTENDED_HEADERS),
                                     nbd_option(99, b"xyz"), nbd_option(OPT_LIST, b"junk"),
                                     nbd_option(OPT_GO, struct.pack(">I", 0) + struct.pack(">H", 3) + b"\0\0"),
                                     nbd_meta(OPT_SET_META_CONTEXT, ["base:allocation"]),
                                     nbd_option(OPT_LIST_META_CONTEXT, struct.pack(">II", 0, 0xFFFFFFFF)),
                                     nbd_option(OPT_INFO, b"\0" * 70000), nbd_option(OPT_ABORT)))
    # Requests at the edges of a 2^63-byte export, then a bad request magic.
    write(out, "edges", nbd_input(28, 63, flags, nbd_option(OPT_STRUCTURED_REPLY),
                                  nbd_meta(OPT_SET_META_CONTEXT, ["qemu:allocation-depth"]), nbd_go(),
                                  nbd_request(CMD_BLOCK_STATUS, 0xFFFFFFFFFFFFFFFF, (1 << 63) - 4096, 0xFFFFFFFF),
                                  nbd_request(CMD_READ, 2, 0xFFFFFFFFFFFFFFFF, 1), nbd_request(CMD_READ, 3, 0, 0),
                                  nbd_request(99, 4), struct.pack(">I", 0xDEADBEEF) + b"\0" * 24))


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-fuzz-seeds.py OUTDIR")
    root = sys.argv[1]
    qcow2_seeds(os.path.join(root, "qcow2"))
    vhd_seeds(os.path.join(root, "vhd"))
    extent_seeds(os.path.join(root, "extent-runs"))
    nbd_seeds(os.path.join(root, "nbd"))


if __name__ == "__main__":
    main()
