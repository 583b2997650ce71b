/* Portable early-exit inference core (FF MP / OP, exit-head networks): C99, freestanding, no malloc, no I/O. */
#ifndef FF_MLP_H
#define FF_MLP_H
#include <stdint.h>
#include "model.h"

enum { FF_MODE_FULL = 0, FF_MODE_LIGHT = 1, FF_MODE_DEPTH = 2 };

typedef struct {
    uint8_t pred;                 /* argmax of scores (lower label on ties) */
    uint8_t exit_layer;           /* 1-based */
    uint32_t macs;                /* multiply-accumulates of this inference */
    float scores[FF_N_CLASSES];   /* MP: accumulated goodness (-inf if pruned); OP, exit: logits */
} ff_result_t;

/* Runs one inference on x[FF_N_IN]. depth is used only for FF_MODE_DEPTH (1..FF_N_LAYERS);
 * thr[FF_N_LAYERS] are the exit thresholds. Arguments are validated by the caller. */
void ff_infer(const float *x, int mode, int depth, const float *thr, ff_result_t *out);

/* The firmware's expf for x <= 0 (no libm): exported for tests. */
float ff_expf(float x);

#endif
