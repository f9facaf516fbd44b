/* The training-domain screen of domain.py (`outside`), one pass over each neighbour-list row, OpenMP over rows.
 *
 * Compiled and loaded by domain.py through cell_knn.build. Row i (centre element a = species[start + i]) is
 * walked along its first k neighbours; the m-th neighbour of element b met on the way is a's m-th nearest b
 * because distances ascend along a row. A row that does not ascend (or holds a NaN) makes the whole call return
 * 1 and the caller uses its numpy path; a neighbour index outside the species array returns 2 (numpy raises or
 * wraps it). The envelope tables, all built by the caller, E = number of elements, R = ranks:
 *
 *   centre_ok[a]       0: a never was a centre in training: every a row is flagged
 *   kth_lo/hi[a]       range of the k-th neighbour distance
 *   lo/hi[a][b][m]     range of the distance to the (m+1)-th nearest b; lo = +inf, hi = -inf where training never
 *                      had that many b (any finite distance then flags)
 *   required[a][b][m]  1: a always had >= m + 1 b among its k neighbours (a non-finite or missing one flags)
 *   short_of[a][b][c]  1: some required[a][b][m] with m >= c (c = R: never); rows with c b atoms (c < R) flag
 *
 * Comparisons are written as in numpy (`d < lo || d > hi`), so NaN bounds never flag; a distance counts as
 * present when it is finite (np.isfinite).
 */
#include <math.h>
#include <stdint.h>

#define MAX_ELEMENTS 64

#define SCREEN_BODY(DIST_T, INDEX_T)                                                                             \
    int err = 0;                                                                                                 \
    if (n_el > MAX_ELEMENTS || k < 1 || k > ld || ranks < 1 || start < 0 || start + rows > n_species) return 3; \
    _Pragma("omp parallel for schedule(static) num_threads(threads) reduction(max : err)")                       \
    for (int64_t i = 0; i < rows; ++i) {                                                                         \
        const DIST_T *d = dist + i * ld;                                                                         \
        const INDEX_T *nb = index + i * ld;                                                                      \
        const int64_t a = species[start + i];                                                                    \
        int count[MAX_ELEMENTS];                                                                                 \
        int flag = 0, bad = 0; /* the reduction's private err starts at INT_MIN: a row's own verdict is bad */   \
        double prev = (double)d[0];                                                                              \
        if (prev != prev) bad = 1;                                                                               \
        for (int64_t j = 1; j < k; ++j) {                                                                        \
            double v = (double)d[j];                                                                             \
            if (!(v >= prev)) bad = 1;                                                                           \
            prev = v;                                                                                            \
        }                                                                                                        \
        for (int64_t j = 0; j < k; ++j) {                                                                        \
            int64_t p = (int64_t)nb[j];                                                                          \
            if (p < 0 || p >= n_species) bad = 2;                                                                \
        }                                                                                                        \
        if (bad) { if (bad > err) err = bad; flags[i] = 0; continue; }                                           \
        if (a < 0 || a >= n_el) { flags[i] = 0; continue; }                                                      \
        if (!centre_ok[a]) { flags[i] = 1; continue; }                                                           \
        const double kth = (double)d[k - 1];                                                                     \
        if (kth < kth_lo[a] || kth > kth_hi[a]) flag = 1;                                                        \
        for (int b = 0; b < n_el; ++b) count[b] = 0;                                                             \
        const int64_t ab0 = a * n_el;                                                                            \
        for (int64_t j = 0; j < k && !flag; ++j) {                                                               \
            const int64_t b = species[(int64_t)nb[j]];                                                           \
            if (b < 0 || b >= n_el) continue;                                                                    \
            const int m = count[b]++;                                                                            \
            if (m >= ranks) continue;                                                                            \
            const int64_t at = (ab0 + b) * ranks + m;                                                            \
            const double v = (double)d[j];                                                                       \
            if (isfinite(v)) {                                                                                   \
                if (v < lo[at] || v > hi[at]) flag = 1;                                                          \
            } else if (required[at]) {                                                                           \
                flag = 1;                                                                                        \
            }                                                                                                    \
        }                                                                                                        \
        for (int b = 0; b < n_el && !flag; ++b) {                                                                \
            const int c = count[b] < ranks ? count[b] : ranks;                                                   \
            if (short_of[(ab0 + b) * (ranks + 1) + c]) flag = 1;                                                 \
        }                                                                                                        \
        flags[i] = (uint8_t)flag;                                                                                \
    }                                                                                                            \
    return err;

#define SCREEN(NAME, DIST_T, INDEX_T)                                                                            \
    int NAME(int64_t rows, int64_t ld, int64_t k, const DIST_T *dist, const INDEX_T *index,                      \
             const int64_t *species, int64_t n_species, int64_t start, int64_t n_el, int64_t ranks,              \
             const uint8_t *centre_ok, const double *kth_lo, const double *kth_hi, const double *lo,             \
             const double *hi, const uint8_t *required, const uint8_t *short_of, int threads, uint8_t *flags) {  \
        SCREEN_BODY(DIST_T, INDEX_T)                                                                             \
    }

/* Returns 0 (flags written), 1 (a row does not ascend or holds NaN), 2 (a neighbour index out of range) or
 * 3 (bad arguments); on a nonzero return the flags are meaningless. */
SCREEN(domain_screen_f32_i32, float, int32_t)
SCREEN(domain_screen_f32_i64, float, int64_t)
SCREEN(domain_screen_f64_i32, double, int32_t)
SCREEN(domain_screen_f64_i64, double, int64_t)
