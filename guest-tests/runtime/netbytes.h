/* Network byte order and the Internet checksum (RFC 1071) for the guests
 * that build frames (virtio_net, net_user). */
#ifndef GUEST_NETBYTES_H
#define GUEST_NETBYTES_H

#include <stdint.h>

static inline void put16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32be(uint8_t *p, uint32_t v)
{
    put16be(p, (uint16_t)(v >> 16));
    put16be(p + 2, (uint16_t)v);
}

static inline uint16_t get16be(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32be(const uint8_t *p)
{
    return (uint32_t)get16be(p) << 16 | get16be(p + 2);
}

/* Adds len bytes at p as 16-bit big-endian words (an odd last byte padded
 * with zero) to the running sum s. */
static inline uint32_t sum16(const uint8_t *p, unsigned len, uint32_t s)
{
    for (unsigned i = 0; i + 1 < len; i += 2)
        s += get16be(p + i);
    if (len & 1)
        s += (uint32_t)p[len - 1] << 8;
    return s;
}

/* The checksum of a sum: carries folded in, complemented. */
static inline uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

#endif
