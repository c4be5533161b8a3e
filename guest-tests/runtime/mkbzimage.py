#!/usr/bin/env python3
"""Builds a bzImage: setup.bin (boot sector + setup header + real-mode code)
followed by the loadable bytes of a payload ELF linked at 1 MiB. Fills in the
header fields that depend on the payload: setup_sects, syssize, init_size."""
import struct
import sys


def payload(elf):
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        sys.exit("mkbzimage: payload is not an ELF64 file")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    loads = []
    for i in range(phnum):
        p_type, _, off, _, paddr, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", elf, phoff + i * phentsize)
        if p_type == 1:
            loads.append((paddr, off, filesz, memsz))
    if len(loads) != 1 or loads[0][0] != 0x100000:
        sys.exit("mkbzimage: payload needs exactly one PT_LOAD at 0x100000")
    _, off, filesz, memsz = loads[0]
    return elf[off:off + filesz], memsz


def main():
    setup_path, elf_path, out_path = sys.argv[1:4]
    setup = bytearray(open(setup_path, "rb").read())
    code, memsz = payload(open(elf_path, "rb").read())
    if len(setup) % 512 or len(setup) < 1024:
        sys.exit("mkbzimage: setup must be whole sectors, at least two")
    code += b"\0" * (-len(code) % 16)
    setup[0x1f1] = len(setup) // 512 - 1
    struct.pack_into("<I", setup, 0x1f4, len(code) // 16)
    struct.pack_into("<I", setup, 0x260, (max(memsz, len(code)) + 4095) & ~4095)
    with open(out_path, "wb") as f:
        f.write(setup + code)


if __name__ == "__main__":
    main()
