#ifndef FF_PROTO_H
#define FF_PROTO_H
/* The protocol version (hardware/protocol.md) in the INFO and BOOT payloads; the host refuses a DUT whose
 * version differs from ffenergy.firmware.protocol.PROTO_VERSION. -D overrides it only to test that refusal. */
#ifndef FF_PROTO_VERSION
#define FF_PROTO_VERSION 1
#endif
/* Sends the BOOT frame, then serves hardware/protocol.md forever. */
void proto_run(void);
#endif
