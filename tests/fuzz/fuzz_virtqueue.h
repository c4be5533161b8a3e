/* The input layout shared by the fuzz target and its replay driver. */
#ifndef TESTS_FUZZ_FUZZ_VIRTQUEUE_H
#define TESTS_FUZZ_FUZZ_VIRTQUEUE_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_RAM 65536          /* guest RAM: the input after the header, zero-padded */

#define FUZZ_DEVICE    1        /* through virtio-rng on the core, else the bare queue */
#define FUZZ_EVENT_IDX 2
#define FUZZ_INDIRECT  4
#define FUZZ_BLK       8        /* through virtio-blk on a small image file (wins over FUZZ_DEVICE) */
#define FUZZ_BLK_SECTORS 128    /* the image: 64 KiB */
#define FUZZ_CONSOLE   16       /* through virtio-console on pipes (unless FUZZ_BLK): seed bit 0 set drives
                                 * the receiveq with host input, clear the transmitq */
#define FUZZ_NET       32       /* through virtio-net on a socket pair (unless FUZZ_BLK or FUZZ_CONSOLE):
                                 * seed % 3 picks the receiveq (frames from the host), the transmitq or
                                 * the control queue; seed bit 2 negotiates MRG_RXBUF */
#define FUZZ_MEM       64       /* through virtio-mem over a hotplug region of FUZZ_MEM_BLOCKS blocks at
                                 * 4 GiB (unless FUZZ_BLK, FUZZ_CONSOLE or FUZZ_NET): seed % 33 blocks
                                 * requested */
#define FUZZ_MEM_BASE   0x100000000ULL
#define FUZZ_MEM_BLOCK  (2ULL << 20)
#define FUZZ_MEM_BLOCKS 32

struct fuzz_hdr {
    uint8_t mode;
    uint8_t pad;
    uint16_t size;              /* queue size as the driver wrote it: any value */
    uint16_t desc, avail, used; /* ring addresses (GPAs) */
    uint16_t last_avail, used_idx;
    uint16_t seed;              /* varies offsets and lengths the device uses */
} __attribute__((packed));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
