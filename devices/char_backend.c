#include "devices/char_backend.h"
struct char_backend { int dummy; };
struct char_backend *char_backend_open(enum serial_mode mode, const char *path, GError **err) { return g_new0(struct char_backend, 1); }
void char_backend_attach(struct char_backend *be, struct loop *l, void (*q)(void *), void *o) {}
void char_backend_set_frontend(struct char_backend *be, const struct char_frontend *fe) {}
void char_backend_accept_input(struct char_backend *be) {}
void char_backend_write(struct char_backend *be, const uint8_t *buf, size_t len) {}
const char *char_backend_pty_path(const struct char_backend *be) { return NULL; }
void char_backend_close(struct char_backend *be) { g_free(be); }
