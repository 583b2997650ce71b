#ifndef FF_PROTO_H
#define FF_PROTO_H
/* Sends the BOOT frame, then serves hardware/protocol.md forever. */
void proto_run(void);
#endif
