/* Early-exit Forward-Forward inference (see ffenergy/ff/arrays.py for the semantics and
 * ffenergy/targets/reference.py for the bit-exact numpy twin). Every sum runs sequentially
 * in float32; build with -ffp-contract=off -fno-math-errno so no FMA is fused and sqrtf is
 * the FPU instruction. */
#include "mlp.h"

#define NEG_INF (-__builtin_inff())

static float h_buf[FF_MAX_IN_DIM];
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

/* Input of pass p to layer l: OP layer 0 reads x with the neutral label applied on the fly;
 * MP layer 0 runs in first_layer. */
static float layer_in(const float *x, int l, int p, int i, int in_slot) {
#if FF_PROC_OP
    (void)p; (void)in_slot;
    if (l == 0) return i < FF_N_CLASSES ? ff_neutral : x[i];
    int off = 0;
    for (int k = 0; k < l - 1; k++) off += ff_dims[k + 1];
    return z_cat[off + i];
#else
    (void)x; (void)l;
    return act[in_slot][p][i];
#endif
}

/* in_buf holds the normalised layer input as the dot products read it: operand() makes int8
 * codes (round half away from zero) or keeps the float32 value; dot() sums row[i] * in_buf[i]
 * for i in [from, to) in index order; activate() applies the int8 scale, the bias and ReLU. */
#if FF_DTYPE_INT8
typedef int32_t acc_t;
static int8_t in_buf[FF_MAX_IN_DIM];
static int8_t operand(float h, int l) {
    float t = h * ff_in_inv_scale[l];
    if (t > 127.0f) t = 127.0f;
    if (t < -127.0f) t = -127.0f;
    return (int8_t)(int32_t)(t + (t >= 0.0f ? 0.5f : -0.5f));
}
static acc_t dot(const ff_w_t *row, int from, int to) {
    acc_t acc = 0;
    for (int i = from; i < to; i++) acc += (int32_t)row[i] * (int32_t)in_buf[i];
    return acc;
}
static float activate(acc_t acc, int l, int j) {
    float z = (float)acc * ff_WS[l][j] + ff_B[l][j];
    return z > 0.0f ? z : 0.0f;
}
#else
typedef float acc_t;
static float in_buf[FF_MAX_IN_DIM];
static float operand(float h, int l) {
    (void)l;
    return h;
}
static acc_t dot(const ff_w_t *row, int from, int to) {
    acc_t acc = 0.0f;
    for (int i = from; i < to; i++) acc = acc + row[i] * in_buf[i];
    return acc;
}
static float activate(acc_t acc, int l, int j) {
    float z = acc + ff_B[l][j];
    return z > 0.0f ? z : 0.0f;
}
#endif

static float norm_denom(float ss, int d_in) { return __builtin_sqrtf(ss / (float)d_in) + ff_norm_eps; }

/* z = ReLU(W_l n(in) + b_l) for pass p; writes d_l floats to out. */
static void layer(const float *x, int l, int p, int in_slot, float *out) {
    const int d_in = ff_dims[l], d_out = ff_dims[l + 1];
    float ss = 0.0f;
    for (int i = 0; i < d_in; i++) {
        float v = layer_in(x, l, p, i, in_slot);
        h_buf[i] = v;
        ss = ss + v * v;
    }
    const float denom = norm_denom(ss, d_in);
    for (int i = 0; i < d_in; i++) in_buf[i] = operand(h_buf[i] / denom, l);
    for (int j = 0; j < d_out; j++) out[j] = activate(dot(ff_W[l] + (int32_t)j * d_in, 0, d_in), l, j);
}

#if !FF_PROC_OP
/* Layer 1 of every active MP pass at once (DESIGN.md section 2): the label overlays differ only
 * in the first FF_N_CLASSES inputs and share one norm (the image part's sum of squares after
 * label_on^2, the order the per-pass loop adds them in), so each row's image product is computed
 * once and pass p adds W[j][p] times its label input. Returns the MACs it ran. */
static uint32_t first_layer(const float *x, float out[][FF_MAX_HID_DIM]) {
    const int d_in = ff_dims[0], d_out = ff_dims[1];
    float ss = ff_label_on * ff_label_on;
    for (int i = FF_N_CLASSES; i < d_in; i++) ss = ss + x[i] * x[i];
    const float denom = norm_denom(ss, d_in);
    for (int i = FF_N_CLASSES; i < d_in; i++) in_buf[i] = operand(x[i] / denom, 0);
    const acc_t label = operand(ff_label_on / denom, 0);
    int n_active = 0;
    for (int p = 0; p < FF_N_CLASSES; p++) n_active += active[p];
    for (int j = 0; j < d_out; j++) {
        const ff_w_t *row = ff_W[0] + (int32_t)j * d_in;
        const acc_t base = dot(row, FF_N_CLASSES, d_in);
        for (int p = 0; p < FF_N_CLASSES; p++)
            if (active[p]) out[p][j] = activate(base + (acc_t)row[p] * label, 0, j);
    }
    return (uint32_t)(d_in - FF_N_CLASSES) * d_out + (uint32_t)n_active * d_out;
}
#endif

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
        if (l == 0) macs += first_layer(x, act[out_slot]);
        for (int p = 0; p < N_PASS; p++) {
            if (!active[p]) continue;
            if (l > 0) {
                layer(x, l, p, in_slot, act[out_slot][p]);
                macs += layer_macs;
            }
            acc_score[p] = acc_score[p] + sumsq(act[out_slot][p], ff_dims[l + 1]);
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
