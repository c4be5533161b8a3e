/* QEMU's qom-get, qom-set and qom-list over a small registry of properties
 * at QOM paths ("/machine/peripheral/vmem0" "requested-size"). A module adds
 * the properties of the objects it owns with qom_add; the first call of
 * qom_qmp_register puts the three commands on the server. Error shapes
 * follow QEMU 7.2: an unknown path is DeviceNotFound "Device 'P' not found",
 * an unknown property GenericError "Property 'TYPE.NAME' not found", a
 * read-only one "Property 'TYPE.NAME' is not writable". Main loop thread. */
#ifndef VMM_QOM_H
#define VMM_QOM_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

struct qmp_server;

/* The value (a new node), or NULL with *err. */
typedef JsonNode *(*qom_get_fn)(void *opaque, GError **err);
/* Takes the value (QMP "value": any JSON); false with *err when refused. */
typedef bool (*qom_set_fn)(void *opaque, JsonNode *value, GError **err);

/* Property `name` of the object at `path`, whose QOM type is `type_name`
 * ("virtio-mem-pci"); `prop_type` is what qom-list shows ("size", "int").
 * set may be NULL (read-only). Strings are copied. */
void qom_add(const char *path, const char *type_name, const char *name, const char *prop_type, qom_get_fn get,
             qom_set_fn set, void *opaque);
/* Drops every property of `path` (an unplugged device). */
void qom_remove(const char *path);
/* Registers qom-get, qom-set and qom-list. */
void qom_qmp_register(struct qmp_server *s);

#endif
