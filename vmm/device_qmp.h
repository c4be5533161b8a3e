/* device_add and device_del: one pair of QMP commands for every kind of
 * hot-pluggable device (CPUs in cpu_qmp.c; PCI devices, memory... in their
 * own modules). A module registers its kind: the drivers device_add takes
 * for it, and how to tell, add and remove its devices. The dispatcher does
 * what is common, in QEMU 7.2's words:
 *   - "driver" missing: GenericError "Parameter 'driver' is missing"; a
 *     driver no kind takes: "'D' is not a valid device model name";
 *   - an "id" that is not an identifier (a letter, then letters, digits,
 *     '-', '.', '_'): "Parameter 'id' expects an identifier"; an id some
 *     kind already has: "Duplicate device ID 'ID'";
 *   - device_del of an id or QOM path no kind claims: DeviceNotFound
 *     "Device 'ID' not found".
 * The kind's add gets the whole arguments object (driver and id included)
 * and checks its own properties. Main loop thread only. */
#ifndef VMM_DEVICE_QMP_H
#define VMM_DEVICE_QMP_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

struct qmp_server;
struct machine;

struct device_qmp_kind {
    const char *name;                   /* for messages: "cpu", "pci" */
    /* Does device_add `driver` belong to this kind? */
    bool (*takes)(struct machine *m, const char *driver);
    /* Is `id` (a device id, or a QOM path) one of this kind's devices now? */
    bool (*owns)(struct machine *m, const char *id);
    /* device_add: true, or false with *err (QMP_ERROR). */
    bool (*add)(struct machine *m, const char *driver, JsonObject *args, GError **err);
    /* device_del of an id this kind owns: true once the removal is asked
     * for (DEVICE_DELETED follows when it is done), or false with *err. */
    bool (*del)(struct machine *m, const char *id, GError **err);
};

/* Adds a kind (a static object; kept) and, the first time, registers
 * device_add and device_del on the server. */
void device_qmp_register_kind(struct qmp_server *s, struct machine *m, const struct device_qmp_kind *kind);
/* QEMU's id_wellformed. */
bool device_qmp_id_wellformed(const char *id);

#endif
