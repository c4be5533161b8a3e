#include "devices/pci/msix.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "vmm/irq_routing.h"
#include "vmm/log.h"
#include "vmm/state.h"

#define CAP_LEN             12
#define CAP_CONTROL         2
#define CAP_TABLE           4
#define CAP_PBA             8
#define CTRL_ENABLE         (1u << 15)
#define CTRL_FUNCTION_MASK  (1u << 14)

#define ENTRY_ADDR_LO       0
#define ENTRY_ADDR_HI       1
#define ENTRY_DATA          2
#define ENTRY_CTRL          3
#define VECTOR_MASKED       1u

#define MSI_ADDR_MASK       0xfff00000u
#define MSI_ADDR_BASE       0xfee00000u
#define MSIX_STATE_VERSION  1

struct msix_vector {
    uint32_t entry[4];      /* address low, address high, data, vector control */
    bool pending;           /* the PBA bit */
    bool live;              /* unmasked with a valid message: deliveries go straight out */
    bool attached;          /* irqfd attached to gsi */
    bool bad_msg_logged;
    int gsi;                /* -1 until msix_vector_irqfd */
    int fd;
};

struct msix {
    struct pci_device *dev;
    struct irq_routing *routing;
    unsigned n;
    unsigned cap;
    unsigned table_bar, pba_bar;
    uint32_t table_off, pba_off;

    /* Guards everything below; taken inside the host's config lock, never
     * around it. */
    pthread_mutex_t lock;
    bool enabled, function_masked;
    struct msix_vector *v;
};

static struct irq_msi_msg vector_msg(const struct msix_vector *v)
{
    return (struct irq_msi_msg){ .addr = (uint64_t)v->entry[ENTRY_ADDR_HI] << 32 | v->entry[ENTRY_ADDR_LO],
                                 .data = v->entry[ENTRY_DATA] };
}

/* Only messages aimed at the LAPICs are deliverable; anything else would be
 * a DMA write on real hardware, which a guest cannot ask of us this way. */
static bool msg_valid(struct msix *m, struct msix_vector *v, unsigned i)
{
    if ((v->entry[ENTRY_ADDR_LO] & MSI_ADDR_MASK) == MSI_ADDR_BASE && v->entry[ENTRY_ADDR_HI] == 0)
        return true;
    if (!v->bad_msg_logged && (v->entry[ENTRY_ADDR_LO] | v->entry[ENTRY_ADDR_HI])) {
        v->bad_msg_logged = true;
        log_warn("PCI %s: MSI-X vector %u address 0x%llx is not an interrupt address; not delivered",
                 m->dev->name, i, (unsigned long long)vector_msg(v).addr);
    }
    return false;
}

static void deliver(struct msix *m, struct msix_vector *v)
{
    struct irq_msi_msg msg = vector_msg(v);
    if (m->routing)
        irq_routing_signal_msi(m->routing, &msg);
}

/* Moves what was written to a detached irqfd into the pending bit. */
static void drain(struct msix_vector *v)
{
    uint64_t count;
    if (v->fd >= 0 && !v->attached && read(v->fd, &count, sizeof(count)) == sizeof(count) && count)
        v->pending = true;
}

/* Brings the vector's route and irqfd in line with its mask state and
 * message, and delivers what was pending when it becomes live. */
static void update_vector(struct msix *m, unsigned i)
{
    struct msix_vector *v = &m->v[i];
    bool masked = !m->enabled || m->function_masked || (v->entry[ENTRY_CTRL] & VECTOR_MASKED);
    bool live = !masked && msg_valid(m, v, i);
    if (live) {
        if (v->gsi >= 0) {
            struct irq_msi_msg msg = vector_msg(v);
            irq_routing_msi_set(m->routing, (unsigned)v->gsi, &msg);
            if (!v->live)
                drain(v);
            if (!v->attached && irq_routing_irqfd_attach(m->routing, v->fd, (unsigned)v->gsi) == 0)
                v->attached = true;
        }
        if (!v->live && v->pending) {
            v->pending = false;
            deliver(m, v);
        }
    } else if (v->attached) {
        irq_routing_irqfd_detach(m->routing, v->fd, (unsigned)v->gsi);
        v->attached = false;
    }
    v->live = live;
}

static void update_all(struct msix *m)
{
    for (unsigned i = 0; i < m->n; i++)
        update_vector(m, i);
}

void msix_notify(struct msix *m, unsigned vector)
{
    if (!m || vector >= m->n)
        return;
    pthread_mutex_lock(&m->lock);
    struct msix_vector *v = &m->v[vector];
    if (v->live)
        deliver(m, v);
    else
        v->pending = true;
    pthread_mutex_unlock(&m->lock);
}

int msix_vector_irqfd(struct msix *m, unsigned vector)
{
    if (!m || vector >= m->n)
        return -EINVAL;
    if (!m->routing)
        return -ENODEV;
    pthread_mutex_lock(&m->lock);
    struct msix_vector *v = &m->v[vector];
    int ret = v->fd;
    if (v->fd < 0) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int gsi = fd < 0 ? -errno : irq_routing_msi_alloc(m->routing);
        if (gsi < 0) {
            if (fd >= 0)
                close(fd);
            ret = gsi;
        } else {
            v->fd = ret = fd;
            v->gsi = gsi;
            v->live = false;    /* so that update_vector routes and attaches it */
            update_vector(m, vector);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

bool msix_enabled(struct msix *m)
{
    pthread_mutex_lock(&m->lock);
    bool e = m->enabled;
    pthread_mutex_unlock(&m->lock);
    return e;
}

bool msix_vector_masked(struct msix *m, unsigned vector)
{
    if (vector >= m->n)
        return true;
    pthread_mutex_lock(&m->lock);
    bool masked = !m->enabled || m->function_masked || (m->v[vector].entry[ENTRY_CTRL] & VECTOR_MASKED);
    pthread_mutex_unlock(&m->lock);
    return masked;
}

bool msix_vector_pending(struct msix *m, unsigned vector)
{
    if (vector >= m->n)
        return false;
    pthread_mutex_lock(&m->lock);
    drain(&m->v[vector]);
    bool p = m->v[vector].pending;
    pthread_mutex_unlock(&m->lock);
    return p;
}

unsigned msix_nr_vectors(const struct msix *m)
{
    return m->n;
}

static uint64_t pba_len(unsigned n)
{
    return ((n + 63) / 64) * 8ull;
}

static bool in_range(uint64_t off, unsigned size, uint64_t start, uint64_t len)
{
    return off >= start && off - start < len && size <= len - (off - start);
}

/* Table bytes are read and written one by one so that any access width the
 * guest uses sees a consistent slice; bits 1:0 of the address and all of
 * the vector control but the mask bit are read-only. */
static const uint32_t entry_wmask[4] = { 0xfffffffcu, 0xffffffffu, 0xffffffffu, VECTOR_MASKED };

bool msix_bar_read(struct msix *m, unsigned bar, uint64_t off, void *data, unsigned size)
{
    uint8_t *out = data;
    if (bar == m->table_bar && in_range(off, size, m->table_off, (uint64_t)m->n * MSIX_ENTRY_SIZE)) {
        pthread_mutex_lock(&m->lock);
        for (unsigned i = 0; i < size; i++) {
            uint64_t b = off - m->table_off + i;
            uint32_t word = m->v[b / MSIX_ENTRY_SIZE].entry[(b % MSIX_ENTRY_SIZE) / 4];
            out[i] = (uint8_t)(word >> (8 * (b % 4)));
        }
        pthread_mutex_unlock(&m->lock);
        return true;
    }
    if (bar == m->pba_bar && in_range(off, size, m->pba_off, pba_len(m->n))) {
        pthread_mutex_lock(&m->lock);
        for (unsigned i = 0; i < size; i++) {
            uint64_t first = (off - m->pba_off + i) * 8;
            uint8_t byte = 0;
            for (unsigned bit = 0; bit < 8 && first + bit < m->n; bit++) {
                struct msix_vector *v = &m->v[first + bit];
                drain(v);
                byte |= (uint8_t)(v->pending << bit);
            }
            out[i] = byte;
        }
        pthread_mutex_unlock(&m->lock);
        return true;
    }
    return false;
}

bool msix_bar_write(struct msix *m, unsigned bar, uint64_t off, const void *data, unsigned size)
{
    const uint8_t *in = data;
    if (bar == m->table_bar && in_range(off, size, m->table_off, (uint64_t)m->n * MSIX_ENTRY_SIZE)) {
        pthread_mutex_lock(&m->lock);
        uint64_t first = (off - m->table_off) / MSIX_ENTRY_SIZE;
        uint64_t last = (off - m->table_off + size - 1) / MSIX_ENTRY_SIZE;
        for (unsigned i = 0; i < size; i++) {
            uint64_t b = off - m->table_off + i;
            unsigned word = (unsigned)(b % MSIX_ENTRY_SIZE) / 4, shift = 8 * (unsigned)(b % 4);
            uint32_t mask = entry_wmask[word] & (0xffu << shift);
            uint32_t *e = &m->v[b / MSIX_ENTRY_SIZE].entry[word];
            *e = (*e & ~mask) | (((uint32_t)in[i] << shift) & mask);
        }
        for (uint64_t i = first; i <= last; i++)
            update_vector(m, (unsigned)i);
        pthread_mutex_unlock(&m->lock);
        return true;
    }
    /* The PBA is read-only. */
    return bar == m->pba_bar && in_range(off, size, m->pba_off, pba_len(m->n));
}

void msix_control_written(struct msix *m)
{
    uint16_t ctrl = (uint16_t)pci_cfg_get(m->dev, m->cap + CAP_CONTROL, 2);
    pthread_mutex_lock(&m->lock);
    m->enabled = ctrl & CTRL_ENABLE;
    m->function_masked = ctrl & CTRL_FUNCTION_MASK;
    update_all(m);
    pthread_mutex_unlock(&m->lock);
}

static void reset_vectors_locked(struct msix *m)
{
    for (unsigned i = 0; i < m->n; i++) {
        struct msix_vector *v = &m->v[i];
        memset(v->entry, 0, sizeof(v->entry));
        v->entry[ENTRY_CTRL] = VECTOR_MASKED;
        v->bad_msg_logged = false;
    }
    update_all(m);
    for (unsigned i = 0; i < m->n; i++) {
        drain(&m->v[i]);
        m->v[i].pending = false;
    }
}

void msix_reset(struct msix *m)
{
    pthread_mutex_lock(&m->lock);
    m->enabled = false;
    m->function_masked = false;
    reset_vectors_locked(m);
    pthread_mutex_unlock(&m->lock);
}

struct msix *msix_create(struct pci_device *d, struct irq_routing *routing, unsigned nr_vectors,
                         unsigned table_bar, uint32_t table_off, unsigned pba_bar, uint32_t pba_off)
{
    if (!d || d->msix || nr_vectors == 0 || nr_vectors > MSIX_MAX_VECTORS || table_bar >= PCI_NUM_BARS ||
        pba_bar >= PCI_NUM_BARS || (table_off & 7) || (pba_off & 7))
        return NULL;
    const struct pci_bar *tb = &d->bar[table_bar], *pb = &d->bar[pba_bar];
    uint64_t tlen = (uint64_t)nr_vectors * MSIX_ENTRY_SIZE, plen = pba_len(nr_vectors);
    if (tb->type == PCI_BAR_NONE || tb->type == PCI_BAR_IO || pb->type == PCI_BAR_NONE ||
        pb->type == PCI_BAR_IO || !in_range(table_off, 1, 0, tb->size) || tlen > tb->size - table_off ||
        !in_range(pba_off, 1, 0, pb->size) || plen > pb->size - pba_off)
        return NULL;
    if (table_bar == pba_bar && table_off < pba_off + plen && pba_off < table_off + tlen)
        return NULL;
    int cap = pci_device_add_cap(d, PCI_CAP_ID_MSIX, CAP_LEN);
    if (cap < 0)
        return NULL;

    struct msix *m = g_new0(struct msix, 1);
    m->dev = d;
    m->routing = routing;
    m->n = nr_vectors;
    m->cap = (unsigned)cap;
    m->table_bar = table_bar;
    m->table_off = table_off;
    m->pba_bar = pba_bar;
    m->pba_off = pba_off;
    pthread_mutex_init(&m->lock, NULL);
    m->v = g_new0(struct msix_vector, nr_vectors);
    for (unsigned i = 0; i < nr_vectors; i++) {
        m->v[i].gsi = -1;
        m->v[i].fd = -1;
    }
    reset_vectors_locked(m);
    pci_cfg_set(d, m->cap + CAP_CONTROL, nr_vectors - 1, 2);
    pci_cfg_set_wmask(d, m->cap + CAP_CONTROL, CTRL_ENABLE | CTRL_FUNCTION_MASK, 2);
    pci_cfg_set(d, m->cap + CAP_TABLE, table_off | table_bar, 4);
    pci_cfg_set(d, m->cap + CAP_PBA, pba_off | pba_bar, 4);
    d->msix = m;
    return m;
}

void msix_destroy(struct msix *m)
{
    if (!m)
        return;
    for (unsigned i = 0; i < m->n; i++) {
        struct msix_vector *v = &m->v[i];
        if (v->attached)
            irq_routing_irqfd_detach(m->routing, v->fd, (unsigned)v->gsi);
        if (v->gsi >= 0)
            irq_routing_msi_free(m->routing, (unsigned)v->gsi);
        if (v->fd >= 0)
            close(v->fd);
    }
    if (m->dev->msix == m)
        m->dev->msix = NULL;
    pthread_mutex_destroy(&m->lock);
    g_free(m->v);
    g_free(m);
}

/* The table and the pending bits; enable and function mask live in config
 * space, which the host saves. */
int msix_save(struct msix *m, struct state_writer *w)
{
    pthread_mutex_lock(&m->lock);
    state_begin_section(w, "msix", MSIX_STATE_VERSION);
    state_put_u32(w, m->n);
    for (unsigned i = 0; i < m->n; i++) {
        struct msix_vector *v = &m->v[i];
        drain(v);
        for (unsigned j = 0; j < 4; j++)
            state_put_u32(w, v->entry[j]);
        state_put_u8(w, v->pending);
    }
    state_end_section(w);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int msix_load(struct msix *m, struct state_reader *r)
{
    uint32_t version, n = 0;
    if (state_open_section(r, "msix", MSIX_STATE_VERSION, &version, NULL) < 0 || state_get_u32(r, &n) < 0 ||
        n != m->n)
        return -EINVAL;
    g_autofree uint32_t *entries = g_new0(uint32_t, 4 * (size_t)n);
    g_autofree uint8_t *pending = g_new0(uint8_t, n);
    int bad = 0;
    for (unsigned i = 0; i < n && !bad; i++) {
        for (unsigned j = 0; j < 4 && !bad; j++)
            bad = state_get_u32(r, &entries[4 * i + j]);
        if (!bad)
            bad = state_get_u8(r, &pending[i]);
    }
    if (bad || state_close_section(r, NULL) < 0)
        return -EINVAL;
    uint16_t ctrl = (uint16_t)pci_cfg_get(m->dev, m->cap + CAP_CONTROL, 2);
    pthread_mutex_lock(&m->lock);
    m->enabled = ctrl & CTRL_ENABLE;
    m->function_masked = ctrl & CTRL_FUNCTION_MASK;
    for (unsigned i = 0; i < n; i++) {
        struct msix_vector *v = &m->v[i];
        for (unsigned j = 0; j < 4; j++)
            v->entry[j] = entries[4 * i + j] & entry_wmask[j];
        v->pending = pending[i] != 0;
        v->live = false;
    }
    update_all(m);
    pthread_mutex_unlock(&m->lock);
    return 0;
}
