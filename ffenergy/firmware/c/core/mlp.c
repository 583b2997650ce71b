/* Early-exit Forward-Forward inference (see ffenergy/firmware/arrays.py for the semantics and
 * ffenergy/firmware/reference.py for the bit-exact numpy twin). Every sum runs sequentially
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

#if FF_DTYPE_INT8
static int32_t acc_buf[FF_MAX_HID_DIM];
#endif

#if FF_DTYPE_INT8 && defined(__ARM_FEATURE_SIMD32) && __ARM_FEATURE_SIMD32
/* Cortex-M4/M7 DSP kernel: dual 16-bit MACs (SMLAD). The layer's quantised input is widened once
 * into int16 pairs in the lane order SXTB16 gives a word of four weights, (q0,q2) then (q1,q3);
 * rows go two at a time, so each pair loaded feeds two rows: per 4 weights of a row one word
 * load, two SXTB16, two SMLAD and half the pair loads.
 * Integer sums are exact, so the order change keeps the result bit-identical with the portable loop. */
#include <arm_acle.h>
static int16x2_t q_pairs[FF_MAX_IN_DIM / 2 + 1];

static void widen_input(int n) {
    for (int g = 0; g + 4 <= n; g += 4) {
        q_pairs[g / 2] = (int16x2_t)((uint16_t)in_buf[g] | (uint32_t)(uint16_t)in_buf[g + 2] << 16);
        q_pairs[g / 2 + 1] = (int16x2_t)((uint16_t)in_buf[g + 1] | (uint32_t)(uint16_t)in_buf[g + 3] << 16);
    }
}

/* SXTB16 of a word rotated by 8 (bytes 1 and 3): GCC does not fold the rotation into the intrinsic. */
static inline int16x2_t sxtb16_ror8(uint32_t w) {
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}

/* Four MACs: weights w (one word, row[0..3]) against the pairs p (the input's (q0,q2) and (q1,q3)). */
static inline int32_t mac4(uint32_t w, int16x2_t p02, int16x2_t p13, int32_t acc) {
    acc = __smlad(__sxtb16((int8x4_t)w), p02, acc);
    return __smlad(sxtb16_ror8(w), p13, acc);
}

static inline uint32_t word(const int8_t *p) {
    uint32_t w;
    __builtin_memcpy(&w, p, 4); /* unaligned word loads are fine on v7-M */
    return w;
}

/* Rows r0 and r1 (n weights each) against the widened input: each input pair loaded feeds both. */
static void dot2_i8(const int8_t *r0, const int8_t *r1, int n, int32_t *out0, int32_t *out1) {
    int32_t a0 = 0, a1 = 0;
    const int16x2_t *q = q_pairs;
    int i = 0;
    for (; i + 8 <= n; i += 8, q += 4) {
        const int16x2_t q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3];
        a0 = mac4(word(r0 + i), q0, q1, a0);
        a1 = mac4(word(r1 + i), q0, q1, a1);
        a0 = mac4(word(r0 + i + 4), q2, q3, a0);
        a1 = mac4(word(r1 + i + 4), q2, q3, a1);
    }
    if (i + 4 <= n) {
        a0 = mac4(word(r0 + i), q[0], q[1], a0);
        a1 = mac4(word(r1 + i), q[0], q[1], a1);
        i += 4;
    }
    for (; i < n; i++) {
        a0 += (int32_t)r0[i] * (int32_t)in_buf[i];
        a1 += (int32_t)r1[i] * (int32_t)in_buf[i];
    }
    *out0 = a0;
    *out1 = a1;
}

/* acc[j] = row j of w (d_out rows of n weights) . in_buf, two rows at a time. */
static void matvec_i8(const int8_t *w, int n, int d_out, int32_t *acc) {
    int j = 0;
    for (; j + 2 <= d_out; j += 2) dot2_i8(w + (int32_t)j * n, w + (int32_t)(j + 1) * n, n, &acc[j], &acc[j + 1]);
    if (j < d_out) {
        int32_t unused;
        dot2_i8(w + (int32_t)j * n, w + (int32_t)j * n, n, &acc[j], &unused);
    }
}
#elif FF_DTYPE_INT8
static void widen_input(int n) { (void)n; }

/* The portable loop (host build, cores without the DSP extension). */
static void matvec_i8(const int8_t *w, int n, int d_out, int32_t *acc) {
    for (int j = 0; j < d_out; j++) acc[j] = dot(w + (int32_t)j * n, 0, n);
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
#if FF_DTYPE_INT8
    widen_input(d_in);
    matvec_i8(ff_W[l], d_in, d_out, acc_buf);
    for (int j = 0; j < d_out; j++) out[j] = activate(acc_buf[j], l, j);
#else
    for (int j = 0; j < d_out; j++) out[j] = activate(dot(ff_W[l] + (int32_t)j * d_in, 0, d_in), l, j);
#endif
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
#if FF_DTYPE_INT8
    /* the image part through the mat-vec kernel: with the label slots zero, the integer sums are
     * exactly those over [FF_N_CLASSES, d_in) */
    for (int i = 0; i < FF_N_CLASSES; i++) in_buf[i] = 0;
    widen_input(d_in);
    matvec_i8(ff_W[0], d_in, d_out, acc_buf);
#endif
    for (int j = 0; j < d_out; j++) {
        const ff_w_t *row = ff_W[0] + (int32_t)j * d_in;
#if FF_DTYPE_INT8
        const acc_t base = acc_buf[j];
#else
        const acc_t base = dot(row, FF_N_CLASSES, d_in);
#endif
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
