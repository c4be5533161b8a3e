/* The QMP commands about the process itself: query-name, query-uuid, quit
 * (the server's own qmp_capabilities, query-version and query-commands are
 * registered by qmp_server_new). */
#ifndef VMM_QMP_CMDS_H
#define VMM_QMP_CMDS_H

struct qmp_server;
struct machine;

/* Registers them, and sends the machine's events (m->emit_event) to the
 * server's clients unless another module already set it. */
void qmp_cmds_qmp_register(struct qmp_server *s, struct machine *m);
/* Listens on every --qmp endpoint of m->cfg; with wait=on, runs the loop
 * until each such endpoint has had a first client (or a signal or quit set
 * the run state to shutdown). 0, or a vmm exit status after one line on stderr. */
int qmp_cmds_listen(struct machine *m);

#endif
