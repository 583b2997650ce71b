/* DUT side of hardware/protocol.md: framing, CRC, resync and command dispatch. Uses only hal.h. */
#include <stdint.h>
#include "hal.h"
#include "mlp.h"
#include "proto.h"

#define SYNC_REQ 0xA5u
#define SYNC_RSP 0x5Au
#define MAX_PAYLOAD 4096u
#define HDR 5u
#define FRAME_TIMEOUT_MS 200u

enum { CMD_INFO = 1, CMD_LOAD, CMD_INFER, CMD_SET_THRESHOLDS, CMD_PING };
enum { ST_OK = 0, ST_BAD_CRC, ST_BAD_CMD, ST_BAD_LEN, ST_NOT_LOADED, ST_BAD_ARG, ST_BOOT = 0x80 };

#ifndef FF_MODEL_NAME_MAX
#error "model.h has no FF_MODEL_NAME_MAX: it was written by an older ffenergy export; export the model again and rebuild"
#endif
/* Reply payloads, sized from the model's bounds: INFO = 12 single bytes, n_in u16, dims u16[L], tick_hz u32
 * and the name; RESULT = 12 bytes, then scores f32[C]. tx holds the larger. */
#define INFO_MAX (12u + 2u + 2u * FF_N_LAYERS + 4u + FF_MODEL_NAME_MAX)
#define RESULT_LEN (12u + 4u * FF_N_CLASSES)
#define TX_LEN (INFO_MAX > RESULT_LEN ? INFO_MAX : RESULT_LEN)
_Static_assert(sizeof FF_MODEL_NAME - 1 <= FF_MODEL_NAME_MAX, "FF_MODEL_NAME exceeds FF_MODEL_NAME_MAX: export again");
_Static_assert(TX_LEN <= MAX_PAYLOAD, "a reply exceeds the protocol's 4096-byte payload: fewer layers or classes");

static uint8_t rx[HDR + MAX_PAYLOAD + 2];
static uint32_t rx_len;
static uint8_t tx[TX_LEN];
static float x_in[FF_N_IN];
static float thr[FF_N_LAYERS];
static int loaded;
static ff_result_t result;

/* Marker functions around the timed region (breakpoints / QEMU plugin hooks). */
__attribute__((noinline)) void hil_trace_begin(void) { __asm__ volatile(""); }
__attribute__((noinline)) void hil_trace_end(void) { __asm__ volatile(""); }

static uint16_t crc16(uint16_t crc, const uint8_t *p, uint32_t n) {
    while (n--) {
        crc ^= (uint16_t)(*p++) << 8;
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

static void put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { put_u16(p, v); put_u16(p + 2, v >> 16); }
static float get_f32(const uint8_t *p) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return v.f;
}
static void put_f32(uint8_t *p, float f) {
    union { uint32_t u; float f; } v;
    v.f = f;
    put_u32(p, v.u);
}

static void reply(uint8_t status, uint8_t seq, const uint8_t *payload, uint32_t len) {
    uint8_t h[HDR], c[2];
    h[0] = SYNC_RSP; h[1] = status; h[2] = seq;
    put_u16(h + 3, len);
    uint16_t crc = crc16(crc16(0xFFFFu, h + 1, HDR - 1), payload, len);
    put_u16(c, crc);
    hal_write(h, HDR);
    if (len) hal_write(payload, len);
    hal_write(c, 2);
}

static uint32_t info_payload(void) {
    static const char name[] = FF_MODEL_NAME;
    uint8_t *p = tx;
    *p++ = FF_PROTO_VERSION; *p++ = FF_FW_MAJOR; *p++ = FF_FW_MINOR; *p++ = FF_FW_PATCH;
    *p++ = FF_DTYPE_INT8; *p++ = FF_SCHEME; *p++ = FF_STAT_MAX; *p++ = FF_N_LAYERS;
    *p++ = FF_N_CLASSES; *p++ = FF_PRUNE_AFTER; *p++ = FF_PRUNE_KEEP; *p++ = 0;
    put_u16(p, FF_N_IN); p += 2;
    for (int l = 0; l < FF_N_LAYERS; l++, p += 2) put_u16(p, ff_dims[l + 1]);
    put_u32(p, hal_tick_hz()); p += 4;
    for (uint32_t i = 0; i + 1 < sizeof name; i++) *p++ = (uint8_t)name[i];
    return (uint32_t)(p - tx);
}

static void reset_state(void) {
    loaded = 0;
    for (int l = 0; l < FF_N_LAYERS; l++) thr[l] = ff_thresholds[l];
}

static void do_infer(uint8_t seq, const uint8_t *p) {
    const int mode = p[0], depth = p[1];
    const uint32_t repeats = (uint32_t)p[2] | (uint32_t)p[3] << 8;
    if (mode > FF_MODE_DEPTH || repeats == 0 || (mode == FF_MODE_DEPTH && (depth < 1 || depth > FF_N_LAYERS))) {
        reply(ST_BAD_ARG, seq, 0, 0);
        return;
    }
    if (!loaded) {
        reply(ST_NOT_LOADED, seq, 0, 0);
        return;
    }
    hal_trigger(1, 0);
    const uint32_t t0 = hal_ticks();
    hil_trace_begin(); /* the QEMU plugin's window: exactly the repeated inferences */
    for (uint32_t r = 0; r < repeats; r++) ff_infer(x_in, mode, depth, thr, &result);
    hil_trace_end();
    const uint32_t ticks = hal_ticks() - t0;
    hal_trigger(0, result.macs * repeats);
    tx[0] = result.pred; tx[1] = result.exit_layer; tx[2] = 0; tx[3] = 0;
    put_u32(tx + 4, result.macs);
    put_u32(tx + 8, ticks);
    for (int c = 0; c < FF_N_CLASSES; c++) put_f32(tx + 12 + 4 * c, result.scores[c]);
    reply(ST_OK, seq, tx, RESULT_LEN);
}

static void dispatch(uint8_t cmd, uint8_t seq, const uint8_t *p, uint32_t len) {
    switch (cmd) {
    case CMD_INFO:
        if (len) break;
        reply(ST_OK, seq, tx, info_payload());
        return;
    case CMD_LOAD:
        if (len == 1 + 4u * FF_N_IN && p[0] == 0) {
            for (int i = 0; i < FF_N_IN; i++) x_in[i] = get_f32(p + 1 + 4 * i);
        } else if (len == 1 + (uint32_t)FF_N_IN && p[0] == 1) {
            for (int i = 0; i < FF_N_IN; i++) x_in[i] = (float)p[1 + i] / 255.0f;
        } else if (len >= 1 && p[0] > 1) {
            reply(ST_BAD_ARG, seq, 0, 0);
            return;
        } else {
            break;
        }
        loaded = 1;
        reply(ST_OK, seq, 0, 0);
        return;
    case CMD_INFER:
        if (len != 4) break;
        do_infer(seq, p);
        return;
    case CMD_SET_THRESHOLDS:
        if (len != 4u * FF_N_LAYERS) break;
        for (int l = 0; l < FF_N_LAYERS; l++) thr[l] = get_f32(p + 4 * l);
        reply(ST_OK, seq, 0, 0);
        return;
    case CMD_PING:
        reply(ST_OK, seq, p, len);
        return;
    default:
        reply(ST_BAD_CMD, seq, 0, 0);
        return;
    }
    reply(ST_BAD_LEN, seq, 0, 0);
}

/* Drop the first byte of the buffer and rescan for the next sync byte. */
static void resync(void) {
    uint32_t s = 1;
    while (s < rx_len && rx[s] != SYNC_REQ) s++;
    for (uint32_t i = s; i < rx_len; i++) rx[i - s] = rx[i];
    rx_len -= s;
}

/* Consume complete frames (or drop broken ones) from the buffer. */
static void process(void) {
    for (;;) {
        if (rx_len == 0) return;
        if (rx[0] != SYNC_REQ) { resync(); continue; }
        if (rx_len < HDR) return;
        const uint32_t len = (uint32_t)rx[3] | (uint32_t)rx[4] << 8;
        if (len > MAX_PAYLOAD) {
            reply(ST_BAD_LEN, rx[2], 0, 0);
            resync();
            continue;
        }
        if (rx_len < HDR + len + 2) return;
        const uint16_t want = (uint16_t)(rx[HDR + len] | rx[HDR + len + 1] << 8);
        if (crc16(0xFFFFu, rx + 1, HDR - 1 + len) != want) {
            reply(ST_BAD_CRC, rx[2], 0, 0);
            resync();
            continue;
        }
        dispatch(rx[1], rx[2], rx + HDR, len);
        const uint32_t used = HDR + len + 2;
        for (uint32_t i = used; i < rx_len; i++) rx[i - used] = rx[i];
        rx_len -= used;
    }
}

void proto_run(void) {
    hal_init();
    reset_state();
    reply(ST_BOOT, 0, tx, info_payload());
    for (;;) {
        int c = hal_getc(FRAME_TIMEOUT_MS);
        if (c < 0) {
            if (rx_len) resync(); /* a partial frame stalled: drop it and look for another start */
            process();
            continue;
        }
        if (rx_len == 0 && (uint8_t)c != SYNC_REQ) continue;
        rx[rx_len++] = (uint8_t)c;
        process();
    }
}
