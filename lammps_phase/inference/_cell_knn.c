/* Exact k nearest neighbours by a cell list (binned points), OpenMP over queries.
 *
 * Compiled and loaded by cell_knn.py. Points are binned into cubic cells of edge h over their bounding box
 * (not periodic: the caller adds periodic images as points). A query first takes every point of the cells within
 * a radius that holds ~1.5 (k+1) points at mean density (rows of cells along z are contiguous) and keeps the k+1
 * nearest, which is exact when at least k+1 lie within that radius. Otherwise it visits cells in order of the
 * smallest distance any point of the cell could have from any point of the query's own cell (a stencil of cell
 * offsets sorted once), skips a cell whose box is farther than the current (k+1)-th candidate, and stops when
 * the stencil's lower bound exceeds it; beyond the stencil it goes on shell by shell of cells.
 *
 * Result per query: the kp1 nearest points with d < sqrt(bound2), distances ascending; missing neighbours
 * are filled with distance inf and index n (as scipy's cKDTree.query). Ties: points at exactly the same
 * (squared) distance are ordered by point index, lower first, so the result does not depend on the
 * threads or the cell size.
 *
 * Every lower bound is reduced by `eps` (per coordinate), which covers the rounding of the binning.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int64_t cell_of(double x, double lo, double inv_h, int64_t dim) {
    double c = floor((x - lo) * inv_h);
    if (!(c >= 0.0)) return 0; /* also NaN */
    if (c >= (double)(dim - 1)) return dim - 1;
    return (int64_t)c;
}

/* Counting sort of the points by cell: cell_start (ncells + 1), points and their indices in cell order.
 * Within a cell the points keep their index order. Returns 0, or -1 when memory is short. */
int cell_knn_bin(int64_t n, const double *pts, const double *lo, double inv_h, const int64_t *dims,
                 int64_t *cell_start, double *sorted_pts, int64_t *sorted_idx) {
    const int64_t ncells = dims[0] * dims[1] * dims[2];
    int64_t *cell = (int64_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!cell) return -1;
    for (int64_t c = 0; c <= ncells; ++c) cell_start[c] = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double *p = pts + 3 * i;
        int64_t c = (cell_of(p[0], lo[0], inv_h, dims[0]) * dims[1] + cell_of(p[1], lo[1], inv_h, dims[1])) * dims[2]
                    + cell_of(p[2], lo[2], inv_h, dims[2]);
        cell[i] = c;
        cell_start[c + 1]++;
    }
    for (int64_t c = 0; c < ncells; ++c) cell_start[c + 1] += cell_start[c];
    /* scatter with a running cursor per cell, kept in cell_start[c] and restored afterwards */
    for (int64_t i = 0; i < n; ++i) {
        int64_t at = cell_start[cell[i]]++;
        sorted_pts[3 * at] = pts[3 * i];
        sorted_pts[3 * at + 1] = pts[3 * i + 1];
        sorted_pts[3 * at + 2] = pts[3 * i + 2];
        sorted_idx[at] = i;
    }
    for (int64_t c = ncells; c > 0; --c) cell_start[c] = cell_start[c - 1];
    cell_start[0] = 0;
    free(cell);
    return 0;
}

typedef struct {
    const double *lo;
    double h, eps, bound2;
    const int64_t *dims, *cell_start, *sorted_idx;
    const double *sorted_pts;
} grid_t;

/* squared distance from q to the box of cell (i, j, l), less eps per coordinate */
static inline double box_dist2(const grid_t *g, const double *q, int64_t i, int64_t j, int64_t l) {
    const int64_t c[3] = {i, j, l};
    double s = 0.0;
    for (int d = 0; d < 3; ++d) {
        double lo = g->lo[d] + (double)c[d] * g->h;
        double gap = q[d] < lo ? lo - q[d] : q[d] - (lo + g->h);
        gap -= g->eps;
        if (gap > 0.0) s += gap * gap;
    }
    return s;
}

/* Insert (d2, j) into the ascending best list bd/bi of kp1 = last + 1 entries (ties: lower index first), if it
 * belongs there; the last entry falls off. */
static inline void insert_best(double *bd, int64_t *bi, int last, double d2, int64_t j) {
    if (d2 > bd[last] || (d2 == bd[last] && j >= bi[last])) return;
    int pos = last;
    while (pos > 0 && (bd[pos - 1] > d2 || (bd[pos - 1] == d2 && bi[pos - 1] > j))) {
        bd[pos] = bd[pos - 1];
        bi[pos] = bi[pos - 1];
        --pos;
    }
    bd[pos] = d2;
    bi[pos] = j;
}

/* the points of one cell into the sorted candidate list (bd, bi) of length kp1 */
static inline void scan_cell(const grid_t *g, const double *q, int64_t cell, int kp1, double *bd, int64_t *bi) {
    const int64_t end = g->cell_start[cell + 1];
    const int last = kp1 - 1;
    for (int64_t a = g->cell_start[cell]; a < end; ++a) {
        const double *p = g->sorted_pts + 3 * a;
        const double dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
        const double d2 = dx * dx + dy * dy + dz * dz;
        if (d2 > bd[last] || !(d2 < g->bound2)) continue;
        insert_best(bd, bi, last, d2, g->sorted_idx[a]);
    }
}

static inline int visit(const grid_t *g, const double *q, int64_t i, int64_t j, int64_t l, int kp1, double *bd,
                        int64_t *bi) {
    const int64_t *dims = g->dims;
    if (i < 0 || j < 0 || l < 0 || i >= dims[0] || j >= dims[1] || l >= dims[2]) return 0;
    const double b = box_dist2(g, q, i, j, l);
    if (b > bd[kp1 - 1] || !(b < g->bound2)) return 0;
    scan_cell(g, q, (i * dims[1] + j) * dims[2] + l, kp1, bd, bi);
    return 1;
}

static double offset_lb2(int64_t dx, int64_t dy, int64_t dz, double h, double eps) {
    const int64_t d[3] = {dx, dy, dz};
    double s = 0.0;
    for (int a = 0; a < 3; ++a) {
        int64_t u = d[a] < 0 ? -d[a] : d[a];
        double gap = (double)(u - 1) * h - eps;
        if (gap > 0.0) s += gap * gap;
    }
    return s;
}

typedef struct {
    double lb2;
    int32_t o[3];
} offset_t;

static int by_lb2(const void *a, const void *b) {
    const offset_t *x = (const offset_t *)a, *y = (const offset_t *)b;
    if (x->lb2 != y->lb2) return x->lb2 < y->lb2 ? -1 : 1;
    for (int d = 0; d < 3; ++d)
        if (x->o[d] != y->o[d]) return x->o[d] < y->o[d] ? -1 : 1;
    return 0;
}

/* the generic search of one query (see cell_knn_query) */
static void search_one(const grid_t *g, const double *q, int kp1, const offset_t *stencil, int64_t n_stencil,
                       int reach, double outside, int64_t far, double *bd, int64_t *bi) {
    const int64_t *dims = g->dims;
    const double h = g->h, eps = g->eps, inv_h = 1.0 / h;
    const int64_t ci = cell_of(q[0], g->lo[0], inv_h, dims[0]), cj = cell_of(q[1], g->lo[1], inv_h, dims[1]),
                  ck = cell_of(q[2], g->lo[2], inv_h, dims[2]);
    for (int64_t s = 0; s < n_stencil; ++s) {
        const double lb = stencil[s].lb2;
        if (lb > bd[kp1 - 1] || !(lb < g->bound2)) return;
        const int32_t *o = stencil[s].o;
        visit(g, q, ci + o[0], cj + o[1], ck + o[2], kp1, bd, bi);
    }
    for (int64_t shell = 1; shell <= far; ++shell) {
        double gap = (double)(shell - 1) * h - eps;
        gap = gap > 0.0 ? gap * gap : 0.0;
        if (gap > bd[kp1 - 1] || !(gap < g->bound2)) return;
        for (int64_t dx = -shell; dx <= shell; ++dx) {
            const int64_t i = ci + dx;
            if (i < 0 || i >= dims[0]) continue;
            for (int64_t dy = -shell; dy <= shell; ++dy) {
                const int64_t j = cj + dy;
                if (j < 0 || j >= dims[1]) continue;
                const int edge = dx == -shell || dx == shell || dy == -shell || dy == shell;
                for (int64_t dz = -shell; dz <= shell; dz += edge ? 1 : 2 * shell) {
                    if (shell <= reach && offset_lb2(dx, dy, dz, h, eps) < outside) continue; /* in the stencil */
                    visit(g, q, i, j, ck + dz, kp1, bd, bi);
                }
            }
        }
    }
}

/* per thread: squared distances and indices of the points gathered for one query, then its candidates */
typedef struct {
    double *d2, *cd2;
    int64_t *id, *cid;
    int64_t cap;
} buffer_t;

static int reserve(buffer_t *b, int64_t need) {
    if (need <= b->cap) return 0;
    int64_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    void *p[4] = {realloc(b->d2, cap * sizeof(double)), NULL, NULL, NULL};
    if (p[0]) b->d2 = p[0];
    p[1] = realloc(b->cd2, cap * sizeof(double));
    if (p[1]) b->cd2 = p[1];
    p[2] = realloc(b->id, cap * sizeof(int64_t));
    if (p[2]) b->id = p[2];
    p[3] = realloc(b->cid, cap * sizeof(int64_t));
    if (p[3]) b->cid = p[3];
    if (!p[0] || !p[1] || !p[2] || !p[3]) return -1;
    b->cap = cap;
    return 0;
}

static inline int64_t clamp_cell(double x, int64_t dim) {
    if (!(x >= 0.0)) return 0;
    if (x >= (double)(dim - 1)) return dim - 1;
    return (int64_t)x;
}

/* The fast search of one query, exact or declined (returns 0: the generic search must do it). Gathers every point
 * of the cells whose box comes within `radius` of q (rows of cells along z are contiguous in memory), keeps those
 * closer than the bound if the bound is within the radius (then all such points were gathered), else those within
 * the radius, which is exact when there are at least kp1 of them. */
static int search_fast(const grid_t *g, buffer_t *b, const double *q, int kp1, double radius, double *bd,
                       int64_t *bi) {
    const int64_t *dims = g->dims;
    const double h = g->h, inv_h = 1.0 / h, eps = g->eps, r2 = radius * radius;
    const double *lo = g->lo;
    const int within_bound = g->bound2 <= r2;
    const double lim = within_bound ? g->bound2 : nextafter(r2, INFINITY);
    int64_t c = 0; /* candidates kept: closer than lim */
    const int64_t i0 = clamp_cell(floor((q[0] - radius - eps - lo[0]) * inv_h), dims[0]);
    const int64_t i1 = clamp_cell(floor((q[0] + radius + eps - lo[0]) * inv_h), dims[0]);
    for (int64_t i = i0; i <= i1; ++i) {
        const double cx = lo[0] + (double)i * h;
        double gx = (q[0] < cx ? cx - q[0] : q[0] - (cx + h)) - eps;
        gx = gx > 0.0 ? gx * gx : 0.0;
        if (gx > r2) continue;
        const double wy = sqrt(r2 - gx) * (1.0 + 1e-12);
        const int64_t j0 = clamp_cell(floor((q[1] - wy - eps - lo[1]) * inv_h), dims[1]);
        const int64_t j1 = clamp_cell(floor((q[1] + wy + eps - lo[1]) * inv_h), dims[1]);
        for (int64_t j = j0; j <= j1; ++j) {
            const double cy = lo[1] + (double)j * h;
            double gy = (q[1] < cy ? cy - q[1] : q[1] - (cy + h)) - eps;
            gy = gx + (gy > 0.0 ? gy * gy : 0.0);
            if (gy > r2) continue;
            const double wz = sqrt(r2 - gy) * (1.0 + 1e-12);
            const int64_t l0 = clamp_cell(floor((q[2] - wz - eps - lo[2]) * inv_h), dims[2]);
            const int64_t l1 = clamp_cell(floor((q[2] + wz + eps - lo[2]) * inv_h), dims[2]);
            const int64_t row = (i * dims[1] + j) * dims[2];
            const int64_t a0 = g->cell_start[row + l0], a1 = g->cell_start[row + l1 + 1];
            if (reserve(b, c + (a1 - a0)) != 0) return 0;
            const double *restrict p = g->sorted_pts + 3 * a0;
            double *restrict cd2 = b->cd2;
            int64_t *restrict cid = b->cid;
            const int64_t *restrict src = g->sorted_idx + a0;
            for (int64_t a = 0; a < a1 - a0; ++a) { /* distances and a branch-free compaction in one pass */
                const double dx = p[3 * a] - q[0], dy = p[3 * a + 1] - q[1], dz = p[3 * a + 2] - q[2];
                const double d2 = dx * dx + dy * dy + dz * dz;
                cd2[c] = d2;
                cid[c] = src[a];
                c += d2 < lim;
            }
        }
    }
    if (!within_bound && c < kp1) return 0;
    const int last = kp1 - 1;
    for (int64_t t = 0; t < c; ++t) insert_best(bd, bi, last, b->cd2[t], b->cid[t]);
    return 1;
}

/* The stencil holds the cell offsets within Chebyshev distance `reach` whose lower bound lb2 (the smallest squared
 * distance between a point of a cell and a point of the cell at that offset) is below that of every offset
 * outside the cube, sorted by lb2: once the next lb2 exceeds the current (k+1)-th candidate, no unvisited cell can
 * hold a closer point. A query whose candidates are still too far when the stencil ends (sparse regions) goes on
 * with whole shells of cells at Chebyshev distance 1, 2, ... (the cells the stencil did not cover). */
typedef struct {
    offset_t *offsets;
    int64_t n, far;
    int reach;
    double outside;
} stencil_t;

static int make_stencil(const grid_t *g, int reach, stencil_t *s) {
    const double h = g->h, eps = g->eps;
    if (reach < 1) reach = 1;
    const int64_t side = 2 * (int64_t)reach + 1;
    s->offsets = (offset_t *)malloc((size_t)(side * side * side) * sizeof(offset_t));
    if (!s->offsets) return -1;
    s->reach = reach;
    double outside = (double)reach * h - eps; /* lb of the nearest offset outside the cube */
    s->outside = outside > 0.0 ? outside * outside : 0.0;
    s->n = 0;
    for (int dx = -reach; dx <= reach; ++dx)
        for (int dy = -reach; dy <= reach; ++dy)
            for (int dz = -reach; dz <= reach; ++dz) {
                const double lb = offset_lb2(dx, dy, dz, h, eps);
                if (lb < s->outside || (dx == 0 && dy == 0 && dz == 0)) {
                    offset_t *o = s->offsets + s->n++;
                    o->lb2 = lb;
                    o->o[0] = dx;
                    o->o[1] = dy;
                    o->o[2] = dz;
                }
            }
    qsort(s->offsets, (size_t)s->n, sizeof(offset_t), by_lb2);
    const int64_t *dims = g->dims;
    s->far = dims[0];
    if (dims[1] > s->far) s->far = dims[1];
    if (dims[2] > s->far) s->far = dims[2];
    return 0;
}

/* The kp1 nearest points of q into bd (true distances, ascending) and bi; missing: inf and n.
 * Fast path (search_fast): every point of the cells within `radius` of the query; exact when at least kp1 of
 * them lie within `radius` (or the bound is within it). Other queries (sparse regions) take the generic search. */
static void nearest(const grid_t *g, const stencil_t *s, buffer_t *buf, const double *q, int kp1, double radius,
                    int64_t n, double *bd, int64_t *bi) {
    for (int a = 0; a < kp1; ++a) {
        bd[a] = INFINITY;
        bi[a] = n;
    }
    const int exact = radius > 0.0 && search_fast(g, buf, q, kp1, radius, bd, bi);
    if (!exact) {
        for (int a = 0; a < kp1; ++a) {
            bd[a] = INFINITY;
            bi[a] = n;
        }
        search_one(g, q, kp1, s->offsets, s->n, s->reach, s->outside, s->far, bd, bi);
    }
    for (int a = 0; a < kp1; ++a) bd[a] = sqrt(bd[a]);
}

static void free_buffer(buffer_t *b) {
    free(b->d2);
    free(b->cd2);
    free(b->id);
    free(b->cid);
}

/* kp1 nearest points of each query: dist (m, kp1) float64 true distances, idx (m, kp1) int64. Returns 0, or -1
 * when memory is short. */
int cell_knn_query(int64_t m, const double *queries, int kp1, double bound2, const double *lo, double h, double eps,
                   const int64_t *dims, const int64_t *cell_start, const double *sorted_pts,
                   const int64_t *sorted_idx, int64_t n, int reach, double radius, int threads,
                   double *dist, int64_t *idx) {
    const grid_t g = {lo, h, eps, bound2, dims, cell_start, sorted_idx, sorted_pts};
    stencil_t s;
    if (make_stencil(&g, reach, &s) != 0) return -1;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads)
    {
        buffer_t buf = {0};
#pragma omp for schedule(dynamic, 64)
        for (int64_t r = 0; r < m; ++r)
            nearest(&g, &s, &buf, queries + 3 * r, kp1, radius, n, dist + (int64_t)kp1 * r, idx + (int64_t)kp1 * r);
        free_buffer(&buf);
    }
    free(s.offsets);
    return 0;
}

/* The k nearest neighbours of atoms (points 0..n_atoms-1 are the atoms at zero shift), written straight into a
 * neighbour list: per query r, the k + 1 nearest points of points[atoms[r]] less the atom itself (point atoms[r];
 * when it is not among them, the farthest of the k + 1), and kth[r], the k-th distance left (inf when fewer were
 * found within the bound). Rows with kth[r] <= shell are exact and written at row rows[r]: index (int32, the atom
 * point_atom[p] of each point p), vectors (float32, points[p] - points[atoms[r]] in float64, then rounded) and
 * distances (float32, ascending); the others are left alone. Queries run in cell order (a counting sort) so
 * consecutive searches share the cache. Returns 0, or -1 when memory is short. */
int cell_knn_neighbors(int64_t m, const int64_t *atoms, const int64_t *rows, int k, double bound2, double shell,
                       const double *lo, double h, double eps, const int64_t *dims, const int64_t *cell_start,
                       const double *sorted_pts, const int64_t *sorted_idx, const double *points,
                       const int64_t *point_atom, int64_t n, int reach, double radius, int threads,
                       int32_t *index, float *vectors, float *distances, double *kth) {
    const grid_t g = {lo, h, eps, bound2, dims, cell_start, sorted_idx, sorted_pts};
    const int kp1 = k + 1;
    const int64_t ncells = dims[0] * dims[1] * dims[2];
    const double inv_h = 1.0 / h;
    stencil_t s;
    if (make_stencil(&g, reach, &s) != 0) return -1;
    int64_t *order = (int64_t *)malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    int64_t *qcell = (int64_t *)malloc((size_t)(m > 0 ? m : 1) * sizeof(int64_t));
    int64_t *start = (int64_t *)calloc((size_t)ncells + 1, sizeof(int64_t));
    int status = order && qcell && start ? 0 : -1;
    if (status == 0) {
        for (int64_t r = 0; r < m; ++r) {
            const double *q = points + 3 * atoms[r];
            qcell[r] = (cell_of(q[0], lo[0], inv_h, dims[0]) * dims[1] + cell_of(q[1], lo[1], inv_h, dims[1])) * dims[2]
                       + cell_of(q[2], lo[2], inv_h, dims[2]);
            start[qcell[r] + 1]++;
        }
        for (int64_t c = 0; c < ncells; ++c) start[c + 1] += start[c];
        for (int64_t r = 0; r < m; ++r) order[start[qcell[r]]++] = r;
    }
    free(qcell);
    free(start);
    const int64_t todo = status == 0 ? m : 0;
    int short_of_memory = 0;
    if (threads < 1) threads = 1;
#pragma omp parallel num_threads(threads) if (todo > 0)
    {
        buffer_t buf = {0};
        double *bd = (double *)malloc((size_t)kp1 * sizeof(double));
        int64_t *bi = (int64_t *)malloc((size_t)kp1 * sizeof(int64_t));
        if (!bd || !bi) {
#pragma omp atomic write
            short_of_memory = 1;
        }
#pragma omp for schedule(dynamic, 64)
        for (int64_t o = 0; o < todo; ++o) {
            if (!bd || !bi) continue;
            const int64_t r = order[o], atom = atoms[r];
            const double *q = points + 3 * atom;
            nearest(&g, &s, &buf, q, kp1, radius, n, bd, bi);
            int drop = k; /* the farthest, unless the atom itself is among them */
            for (int a = 0; a < kp1; ++a)
                if (bi[a] == atom) {
                    drop = a;
                    break;
                }
            const double last = bd[drop == k ? k - 1 : k];
            kth[r] = last;
            if (!(last <= shell)) continue;
            int32_t *out_i = index + (int64_t)k * rows[r];
            float *out_v = vectors + (int64_t)3 * k * rows[r];
            float *out_d = distances + (int64_t)k * rows[r];
            for (int a = 0, c = 0; a < kp1; ++a) {
                if (a == drop) continue;
                const double *p = points + 3 * bi[a];
                out_i[c] = (int32_t)point_atom[bi[a]];
                out_v[3 * c] = (float)(p[0] - q[0]);
                out_v[3 * c + 1] = (float)(p[1] - q[1]);
                out_v[3 * c + 2] = (float)(p[2] - q[2]);
                out_d[c] = (float)bd[a];
                ++c;
            }
        }
        free(bd);
        free(bi);
        free_buffer(&buf);
    }
    free(order);
    free(s.offsets);
    return status == 0 && !short_of_memory ? 0 : -1;
}
