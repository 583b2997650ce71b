/* Early-exit Forward-Forward inference (see ffenergy/ff/arrays.py for the semantics and
 * ffenergy/targets/reference.py for the bit-exact numpy twin). Every sum runs sequentially
 * in float32; build with -ffp-contract=off -fno-math-errno so no FMA is fused and sqrtf is
 * the FPU instruction. */
#include "mlp.h"

#define NEG_INF (-__builtin_inff())

static float h_buf[FF_MAX_IN_DIM];
#if FF_DTYPE_INT8
static int8_t q_buf[FF_MAX_IN_DIM];
#endif
#if FF_PROC_OP
static float z_cat[FF_SUM_HID];
#define N_PASS 1
#else
static float act[2][FF_N_CLASSES][FF_MAX_HID_DIM];
#define N_PASS FF_N_CLASSES
#endif
static float acc_score[FF_N_CLASSES];
static uint8_t active[FF_N_CLASSES];

float ff_expf(float x) {
    if (x < -87.0f) return 0.0f;
    float t = x * 1.44269504088896341f + 0.5f;
    int32_t n = (int32_t)t;
    if ((float)n > t) n -= 1;            /* floor */
    float fx = (float)n;
    float r = x - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r;
    y = y + 1.0f;
    union { uint32_t u; float f; } s;
    s.u = (uint32_t)(n + 127) << 23;
    return y * s.f;
}

/* Input of pass p to layer l (layer 0 reads x with the label overlay applied on the fly). */
static float layer_in(const float *x, int l, int p, int i, int in_slot) {
    if (l == 0) {
        if (i >= FF_N_CLASSES) return x[i];
#if FF_PROC_OP
        (void)p;
        return ff_neutral;
#else
        return i == p ? ff_label_on : 0.0f;
#endif
    }
#if FF_PROC_OP
    (void)p; (void)in_slot;
    int off = 0;
    for (int k = 0; k < l - 1; k++) off += ff_dims[k + 1];
    return z_cat[off + i];
#else
    return act[in_slot][p][i];
#endif
}

/* z = ReLU(W_l n(in) + b_l) for pass p; writes d_l floats to out. */
static void layer(const float *x, int l, int p, int in_slot, float *out) {
    const int d_in = ff_dims[l], d_out = ff_dims[l + 1];
    float ss = 0.0f;
    for (int i = 0; i < d_in; i++) {
        float v = layer_in(x, l, p, i, in_slot);
        h_buf[i] = v;
        ss = ss + v * v;
    }
    float denom = __builtin_sqrtf(ss / (float)d_in) + ff_norm_eps;
    const ff_w_t *w = ff_W[l];
    const float *b = ff_B[l];
#if FF_DTYPE_INT8
    const float inv = ff_in_inv_scale[l];
    for (int i = 0; i < d_in; i++) {
        float t = (h_buf[i] / denom) * inv;
        if (t > 127.0f) t = 127.0f;
        if (t < -127.0f) t = -127.0f;
        q_buf[i] = (int8_t)(int32_t)(t + (t >= 0.0f ? 0.5f : -0.5f));
    }
    const float *ws = ff_WS[l];
    for (int j = 0; j < d_out; j++) {
        const ff_w_t *row = w + (int32_t)j * d_in;
        int32_t acc = 0;
        for (int i = 0; i < d_in; i++) acc += (int32_t)row[i] * (int32_t)q_buf[i];
        float z = (float)acc * ws[j] + b[j];
        out[j] = z > 0.0f ? z : 0.0f;
    }
#else
    for (int i = 0; i < d_in; i++) h_buf[i] = h_buf[i] / denom;
    for (int j = 0; j < d_out; j++) {
        const ff_w_t *row = w + (int32_t)j * d_in;
        float acc = 0.0f;
        for (int i = 0; i < d_in; i++) acc = acc + row[i] * h_buf[i];
        float z = acc + b[j];
        out[j] = z > 0.0f ? z : 0.0f;
    }
#endif
}

static float sumsq(const float *v, int n) {
    float g = 0.0f;
    for (int i = 0; i < n; i++) g = g + v[i] * v[i];
    return g;
}

static int argmax(const float *s) {
    int best = 0;
    for (int c = 1; c < FF_N_CLASSES; c++)
        if (s[c] > s[best]) best = c;
    return best;
}

static float confidence(const float *s) {
    int best = argmax(s);
    float top1 = s[best], top2 = NEG_INF;
    for (int c = 0; c < FF_N_CLASSES; c++)
        if (c != best && s[c] > top2) top2 = s[c];
#if FF_STAT_MAX
#if FF_PROC_OP
    (void)top2;
    float total = 0.0f;
    for (int c = 0; c < FF_N_CLASSES; c++) total = total + ff_expf(s[c] - top1);
    return 1.0f / total;
#else
    (void)top2;
    return top1;
#endif
#else
    return top1 - top2;
#endif
}

#if !FF_PROC_OP && FF_PRUNE_KEEP
/* Keep the FF_PRUNE_KEEP highest accumulated scores (lower label first on ties). */
static void prune(void) {
    uint8_t keep[FF_N_CLASSES] = {0};
    for (int r = 0; r < FF_PRUNE_KEEP; r++) {
        int best = -1;
        for (int c = 0; c < FF_N_CLASSES; c++)
            if (!keep[c] && (best < 0 || acc_score[c] > acc_score[best])) best = c;
        keep[best] = 1;
    }
    for (int c = 0; c < FF_N_CLASSES; c++) {
        active[c] = keep[c];
        if (!keep[c]) acc_score[c] = NEG_INF;
    }
}
#endif

void ff_infer(const float *x, int mode, int depth, const float *thr, ff_result_t *out) {
    const int last = mode == FF_MODE_FULL ? FF_N_LAYERS : mode == FF_MODE_DEPTH ? depth : FF_N_LAYERS;
    uint32_t macs = 0;
    int l = 0;
    for (int c = 0; c < FF_N_CLASSES; c++) {
        acc_score[c] = 0.0f;
        active[c] = 1;
    }
    for (l = 0; l < last; l++) {
        const uint32_t layer_macs = (uint32_t)ff_dims[l] * ff_dims[l + 1];
#if FF_PROC_OP
        int off = 0;
        for (int k = 0; k < l; k++) off += ff_dims[k + 1];
        layer(x, l, 0, 0, z_cat + off);
        const int width = off + ff_dims[l + 1];
        const ff_w_t *head = ff_H[l];
        for (int c = 0; c < FF_N_CLASSES; c++) {
            float a = 0.0f;
            for (int m = 0; m < width; m++) a = a + (float)head[c * width + m] * z_cat[m];
#if FF_DTYPE_INT8
            a = a * ff_HS[l][c];
#endif
            acc_score[c] = a;
        }
        macs += layer_macs + (uint32_t)FF_N_CLASSES * width;
#else
        const int in_slot = l & 1, out_slot = in_slot ^ 1;
        for (int p = 0; p < N_PASS; p++) {
            if (!active[p]) continue;
            layer(x, l, p, in_slot, act[out_slot][p]);
            acc_score[p] = acc_score[p] + sumsq(act[out_slot][p], ff_dims[l + 1]);
            macs += layer_macs;
        }
#endif
        if (l + 1 == last) break;
        if (mode == FF_MODE_LIGHT && confidence(acc_score) >= thr[l]) break;
#if !FF_PROC_OP && FF_PRUNE_KEEP
        if (l + 1 == FF_PRUNE_AFTER) prune();
#endif
    }
    out->exit_layer = (uint8_t)(l + 1);
    out->macs = macs;
    for (int c = 0; c < FF_N_CLASSES; c++) out->scores[c] = acc_score[c];
    out->pred = (uint8_t)argmax(acc_score);
}
