/* The invariant geometry of a k-NN graph, per atom, for the fused CPU path: the equations of features.py and of
 * kernels._scaled_distances, computed 16 atoms at a time (one per SIMD lane) instead of through batched 3-long
 * matrix products.
 *
 * Compiled and loaded by geometry_kernel.py. For atom i with neighbour vectors r_ij (float32, nearest first):
 *   d_ij = |r_ij|, u_ij = r_ij / max(d_ij, 1e-6), s_i = max(mean_j d_ij, 1e-6) (1 without a local scale)
 *   sdist_ij = d_ij / s_i, inv_scale_i = 1 / s_i
 *   bond order, per count n and l = 1..l_bo:  f = (1/n^2) sum_{j,j' < n} (u_ij . u_ij')^l, then * scale + shift
 *     (the pair sum taken once per unordered pair, twice weighted, plus the diagonal)
 *   edge angles, per neighbour j and l = 1..l_ang:  g = (1/n_ang) sum_{m < n_ang} (u_ij . u_im)^l
 * Any output pointer may be NULL (not computed). Sums run in another order than torch's: results agree to float32
 * rounding, not bit for bit. Returns 0, or -1 for sizes beyond MAXK / MAXL.
 */
#include <math.h>
#include <stdint.h>

#define LANES 16
#define MAXK 64
#define MAXL 8
typedef float vf __attribute__((vector_size(4 * LANES)));

#define SPLAT(a) ((vf){0} + (a))

__attribute__((target_clones("avx512f", "avx2", "default")))
int geometry_f32(int64_t n, int k, const float *vec, int local, float *sdist, float *inv_scale, int l_bo,
                 int ncounts, const int32_t *counts, const float *bo_scale, const float *bo_shift, float *bo,
                 int l_ang, int n_ang, float *angles, int threads) {
    if (k < 1 || k > MAXK || l_bo < 0 || l_bo > MAXL || l_ang < 0 || l_ang > MAXL || n_ang < 0 || n_ang > k)
        return -1;
    for (int a = 0; a < ncounts; ++a)
        if (counts[a] < 1 || counts[a] > k) return -1;
    const int64_t blocks = (n + LANES - 1) / LANES;
    if (threads < 1) threads = 1;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
        vf ux[MAXK], uy[MAXK], uz[MAXK], dist[MAXK];
        vf rows[MAXK][MAXL]; /* rows[j][l]: sum over j' <= j of the pair weight times (u_j . u_j')^(l+1) */
        vf ang[MAXK][MAXL];
        int64_t atom[LANES];
        for (int lane = 0; lane < LANES; ++lane) {
            const int64_t i = blk * LANES + lane;
            atom[lane] = i < n ? i : n - 1; /* the last block's spare lanes repeat the last atom */
        }
        vf mean = SPLAT(0.0f);
        for (int j = 0; j < k; ++j) {
            vf x, y, z, d, dc;
            for (int lane = 0; lane < LANES; ++lane) {
                const float *r = vec + (atom[lane] * k + j) * 3;
                x[lane] = r[0];
                y[lane] = r[1];
                z[lane] = r[2];
            }
            const vf d2 = x * x + y * y + z * z;
            for (int lane = 0; lane < LANES; ++lane) {
                d[lane] = sqrtf(d2[lane]);
                dc[lane] = d[lane] > 1e-6f ? d[lane] : 1e-6f;
            }
            dist[j] = d;
            mean += d;
            ux[j] = x / dc;
            uy[j] = y / dc;
            uz[j] = z / dc;
        }
        vf scale = SPLAT(1.0f);
        if (local) {
            mean = mean / (float)k;
            for (int lane = 0; lane < LANES; ++lane) scale[lane] = mean[lane] > 1e-6f ? mean[lane] : 1e-6f;
        }
        const vf inv = 1.0f / scale;
        if (bo)
            for (int j = 0; j < k; ++j) {
                for (int l = 0; l < l_bo; ++l) rows[j][l] = SPLAT(0.0f);
                for (int jj = 0; jj <= j; ++jj) {
                    const vf c = ux[j] * ux[jj] + uy[j] * uy[jj] + uz[j] * uz[jj];
                    const float w = jj == j ? 1.0f : 2.0f;
                    vf p = c;
                    for (int l = 0; l < l_bo; ++l) {
                        rows[j][l] += w * p;
                        p *= c;
                    }
                }
            }
        if (angles)
            for (int j = 0; j < k; ++j) {
                for (int l = 0; l < l_ang; ++l) ang[j][l] = SPLAT(0.0f);
                for (int m = 0; m < n_ang; ++m) {
                    const vf c = ux[j] * ux[m] + uy[j] * uy[m] + uz[j] * uz[m];
                    vf p = c;
                    for (int l = 0; l < l_ang; ++l) {
                        ang[j][l] += p;
                        p *= c;
                    }
                }
            }
        for (int lane = 0; lane < LANES; ++lane) {
            const int64_t i = blk * LANES + lane;
            if (i >= n) break;
            if (sdist)
                for (int j = 0; j < k; ++j) sdist[i * k + j] = dist[j][lane] / scale[lane];
            if (inv_scale) inv_scale[i] = inv[lane];
            if (bo)
                for (int a = 0; a < ncounts; ++a) {
                    const int cn = counts[a];
                    for (int l = 0; l < l_bo; ++l) {
                        float s = 0.0f;
                        for (int j = 0; j < cn; ++j) s += rows[j][l][lane];
                        const int o = a * l_bo + l;
                        bo[i * ncounts * l_bo + o] = s / (float)(cn * cn) * bo_scale[o] + bo_shift[o];
                    }
                }
            if (angles)
                for (int j = 0; j < k; ++j)
                    for (int l = 0; l < l_ang; ++l)
                        angles[(i * k + j) * l_ang + l] = ang[j][l][lane] / (float)n_ang;
        }
    }
    return 0;
}
