/* virtio-console (VIRTIO 1.2, 5.3) with one port, the guest's hvc0: queue
 * 0 is its receiveq, queue 1 its transmitq; no MULTIPORT, no EMERG_WRITE.
 * VIRTIO_CONSOLE_F_SIZE is offered when the backend is a terminal, with the
 * terminal's size; virtio_console_resize passes on a new one.
 *
 * The port is a struct char_backend, attached to the same loop as the
 * device (its input callbacks and the device's queues run on one thread).
 *
 * Transmit: each chain's readable bytes go to char_backend_write_iov; a
 * chain the backend has not finished writing is held and the queue is not
 * popped further until it has, so a slow reader on stdio, a file or a
 * socket's client holds the guest back (backpressure) and nothing is lost;
 * the chain is put on the used ring once written.
 * Receive: input is read from the host only while the guest has a receive
 * buffer posted (the backend's can_receive reports the next chain's size);
 * otherwise it waits in the host fd until the guest kicks the receiveq.
 *
 * Hostile chains (a writable buffer in the transmitq, a readable one in the
 * receiveq, and everything virtq_pop refuses) break the device through the
 * core (NEEDS_RESET). Save waits for a write in flight (ops->quiesce). */
#ifndef DEVICES_VIRTIO_CONSOLE_H
#define DEVICES_VIRTIO_CONSOLE_H

#include "devices/virtio/virtio.h"

struct char_backend;

#define VIRTIO_CONSOLE_F_SIZE         0
#define VIRTIO_CONSOLE_F_MULTIPORT    1
#define VIRTIO_CONSOLE_F_EMERG_WRITE  2

#define VIRTIO_CONSOLE_RXQ            0
#define VIRTIO_CONSOLE_TXQ            1
#define VIRTIO_CONSOLE_QUEUE_SIZE     128

/* Config space (5.3.4): cols, rows, max_nr_ports, emerg_wr. */
#define VIRTIO_CONSOLE_CFG_COLS       0
#define VIRTIO_CONSOLE_CFG_ROWS       2
#define VIRTIO_CONSOLE_CFG_MAX_PORTS  4
#define VIRTIO_CONSOLE_CFG_EMERG_WR   8
#define VIRTIO_CONSOLE_CONFIG_SIZE    12

struct virtio_console {
    struct virtio_device vdev;
    struct char_backend *be;
    uint8_t config[VIRTIO_CONSOLE_CONFIG_SIZE];
    struct virtq_chain *tx_chain;   /* being written: held off the used ring */
    bool rx_blocked;                /* the backend was told "no room" */
};

/* be stays the caller's (it outlives resets); the device becomes its
 * frontend. cols/rows: 0 when the backend is no terminal (no F_SIZE). */
struct virtio_console *virtio_console_new(struct guest_memory *gm, struct loop *loop, struct char_backend *be,
                                          uint16_t cols, uint16_t rows);
/* The terminal has a new size: with F_SIZE offered, the config space takes
 * it and the driver gets a config change notification. Any thread. */
void virtio_console_resize(struct virtio_console *con, uint16_t cols, uint16_t rows);
/* Detaches from the backend and frees. Loop thread. */
void virtio_console_free(struct virtio_console *con);

#endif
