/*
 * test_parity_nn.c
 *	  GPU-vs-CPU parity of the neural-network operations of the backend
 *	  table (ABI 2, see backend.h): every one of them runs on the CPU backend
 *	  (the reference) and on the CUDA backend with random data of several
 *	  shapes, awkward ones included (one row, widths that are not multiples
 *	  of 4 or 32, t = 1 and t = 200, v = 1 and v = 50000, ignored targets and
 *	  negative ids, left padding and all-invalid sequences, duplicated ids,
 *	  dropout at p = 0 and p > 0, AdamW with and without a decay mask).  Each
 *	  case runs twice on the device and must give bitwise the same result
 *	  (the contract makes every operation deterministic), negative sizes must
 *	  be refused with ISRF_ERR_INVALID on both backends, and the heavy
 *	  operations are timed on both (printed, never asserted).
 *
 * The CUDA library is $ISRF_CUDA_LIBRARY or ISRF_BUILD_DIR/isrf_cuda.so;
 * where it cannot be opened (no library, no driver, no device) the test
 * prints "test_parity_nn: SKIP: <reason>" and passes with nothing counted.
 * With ISRF_PARITY_SELF=1 a second CPU backend stands in for the CUDA one,
 * so that the test itself runs without a GPU; every comparison is then
 * bitwise.  ISRF_PARITY_VERBOSE=1 prints, per comparison, the largest
 * |device - cpu| / tolerance seen (to see how much room a kernel has).
 *
 * Tolerances (float32 data; the CPU backend is the reference, no double
 * reference is needed).  u is float's unit roundoff, 6e-8.  A "scale" is
 * the sum of the absolute values of the terms that make up a result, so a
 * tolerance follows the size of the computation, not that of a result that
 * may cancel to zero.  A different summation order (a tree on the device,
 * ascending on the CPU) costs about u sqrt(n) scale; the budgets below are
 * one to two orders above that, and far below what a lost, doubled or
 * misplaced term costs on the small shapes.
 *
 *	bitwise: mem_zero, copy, rows_set, add, gather_rows (one add when
 *		accumulating), mask_rows, dropout at p = 0 and the zero pattern of
 *		dropout at p > 0, padding columns and blocks that an operation must
 *		not touch.  Where the contract prescribes 0 (masked and future keys
 *		of attention, invalid queries, ignored rows of softmax_ce) both
 *		backends must give exactly 0 (either sign).
 *	gemm_batched: 1e-5 sqrt(k) (|alpha| sum_p |a b| + |beta c|), as gemm in
 *		test_parity
 *	colsum_acc, scatter_add_rows: 1e-5 sqrt(n + 1) (|acc0| + sum |x|) over
 *		the n rows that reach an element
 *	layernorm_forward: mean 1e-5 sqrt(c) mean|x|; rstd 1e-5 sqrt(c) rstd
 *		(1 + mean^2 rstd^2) (a one-pass variance may lose that much to
 *		cancellation on offset rows); out 1e-5 sqrt(c) ((|x| + |mean|) rstd
 *		|w| + |b|)
 *	layernorm_backward: dx 1e-5 sqrt(c) (rstd (|g w| + mean|g w| + |xhat|
 *		mean|g w xhat|) + |dx0|) from the same mean and rstd on both sides;
 *		dw and db as column sums over the n rows
 *	gelu_forward: 1e-6 max(1, |x|); gelu_backward: 2e-6 (1 + |x| k (1 +
 *		3 c x^2)) |dout| + 1e-6 |dx0|.  The reference has its own tanh
 *		(absolute error below 2e-7), the device has tanhf; the derivative
 *		multiplies tanh's error by up to |x| du/dx.  A fast-math tanh
 *		(2^-11) fails, as it should.
 *	dropout (kept elements), adamw_step: 1e-6 relative to the terms (one
 *		or two roundings, FMA contraction on the device)
 *	attn_softmax_forward, softmax_ce: a probability p within p (2e-6
 *		sqrt(keys) + 1e-6 (1 + |s - max| + range)) plus 1e-30: the sum of
 *		the exps in another order, and expf's error, which grows with its
 *		argument (range = max - min over the row); row_loss within 2e-6
 *		sqrt(v) + 1e-6 (2 + range + |max| + |l_target| + log v); dlogits
 *		grad_scale times the probability's bound, plus 1e-6 grad_scale at
 *		the target (where grad_scale is subtracted)
 *	attn_softmax_backward: 1e-5 sqrt(r + 1) p (|ds| + sum_j |p ds|) + 1e-30
 *	sumsq: 1e-12 sqrt(n + 1) relative (sums in double; a float square
 *		fails on the small and the huge cases)
 */
#define PARITY_NAME "test_parity_nn"
#include "parity.h"
#include "nn/layers.h"

#include <stdint.h>
#include <string.h>

#define PARITY_GOLDEN 0x9E3779B97F4A7C15ULL
#define PARITY_GELU_K 0.7978845608028654	/* sqrt(2 / pi) */
#define PARITY_GELU_C 0.044715

static bool self_mode;			/* gpu is a second CPU backend */
static bool verbose;
static const char *gpu_label = "cuda";
static unsigned long long seed = 20260303ULL;

/* ---- helpers ---------------------------------------------------------- */

/* n uniform floats in (-scale, scale), none of them exactly zero. */
static float *
rand_floats(size_t n, float scale)
{
	float	   *p = xmalloc(sizeof(float) * n);
	size_t		i;

	for (i = 0; i < n; i++)
	{
		float		u = unit_rand_uniform(&seed);

		p[i] = (u != 0.0f ? u : 0.5f) * scale;
	}
	return p;
}

static unsigned char *
rand_bytes(size_t n)
{
	unsigned char *p = xmalloc(n);
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char) (unit_rand_next(&seed) >> 56);
	return p;
}

/* Uniform integer in [0, n), n > 0. */
static int
rand_below(int n)
{
	return (int) (unit_rand_next(&seed) % (unsigned long long) n);
}

/* The backend of run t: the reference first, then the one under test twice. */
static IsrfBackend *
runner(int t)
{
	return t == 0 ? cpu : gpu;
}

/* Sync after an operation that succeeded, so that a late failure shows. */
static IsrfStatus
finish(IsrfBackend *b, IsrfStatus st)
{
	return st == ISRF_OK ? b->sync(b) : st;
}

/* True when both backends have the operation; a missing one is a failure. */
static bool
need_op(bool on_cpu, bool on_gpu, const char *name)
{
	CHECK_MSG(on_cpu && on_gpu, "operation %s is missing on %s", name,
			  on_cpu ? gpu_label : "cpu");
	return on_cpu && on_gpu;
}

#define NEED(op) need_op(cpu->op != NULL, gpu->op != NULL, #op)

/* All three runs of a case returned ISRF_OK. */
static void
check_status(const char *what, const IsrfStatus st[3])
{
	CHECK_MSG(st[0] == ISRF_OK && st[1] == ISRF_OK && st[2] == ISRF_OK,
			  "%s: status cpu %d, %s %d and %d: %s", what, (int) st[0], gpu_label,
			  (int) st[1], (int) st[2], env.errmsg);
}

/* Two runs on the device under test gave bitwise the same bytes. */
static void
check_repeat(const char *what, const char *item, const void *g1, const void *g2,
			 size_t bytes)
{
	CHECK_MSG(bytes == 0 || memcmp(g1, g2, bytes) == 0,
			  "%s, %s: two %s runs differ", what, item, gpu_label);
}

/* got is bitwise ref; names say which sides they are. */
static void
check_bytes(const char *what, const char *item, const char *ref_name,
			const void *ref, const char *got_name, const void *got, size_t bytes)
{
	const unsigned char *r = ref,
			   *g = got;
	size_t		i;

	for (i = 0; i < bytes; i++)
		if (r[i] != g[i])
			break;
	CHECK_MSG(i == bytes, "%s, %s: %s differs from %s at byte %zu (%u vs %u)",
			  what, item, got_name, ref_name, i, i < bytes ? g[i] : 0u, i < bytes ? r[i] : 0u);
}

/*
 * Element-wise comparison with a tolerance per element: counts the elements
 * out of tolerance and keeps the first for the message.
 */
typedef struct Cmp
{
	size_t		n;				/* elements compared */
	size_t		bad;			/* out of tolerance */
	size_t		first;			/* index of the first bad one */
	double		ref;
	double		got;
	double		tol;
	double		worst;			/* largest |got - ref| / tol */
} Cmp;

static void
cmp_init(Cmp *c)
{
	memset(c, 0, sizeof(*c));
}

static void
cmp_fail(Cmp *c, size_t i, float ref, float got, double tol)
{
	if (c->bad++ == 0)
	{
		c->first = i;
		c->ref = ref;
		c->got = got;
		c->tol = tol;
	}
}

/* got within tol of ref (bitwise in self mode). */
static void
cmp_float(Cmp *c, size_t i, float ref, float got, double tol)
{
	double		d = fabs((double) got - (double) ref);

	c->n++;
	if (self_mode ? memcmp(&ref, &got, sizeof(float)) != 0 : !(d <= tol))
		cmp_fail(c, i, ref, got, tol);
	else if (tol > 0.0 && d / tol > c->worst)
		c->worst = d / tol;
}

/* got bitwise equal to ref. */
static void
cmp_exact(Cmp *c, size_t i, float ref, float got)
{
	c->n++;
	if (memcmp(&ref, &got, sizeof(float)) != 0)
		cmp_fail(c, i, ref, got, 0.0);
}

/* Both exactly zero (either sign; bitwise in self mode), as prescribed. */
static void
cmp_zero(Cmp *c, size_t i, float ref, float got)
{
	c->n++;
	if (self_mode ? memcmp(&ref, &got, sizeof(float)) != 0 : !(ref == 0.0f && got == 0.0f))
		cmp_fail(c, i, ref, got, 0.0);
}

/* One check for the comparison of the reference with the device. */
static void
cmp_report(const Cmp *c, const char *what, const char *item)
{
	CHECK_MSG(c->bad == 0, "%s, %s: %zu of %zu elements out of tolerance; first [%zu]: "
			  "cpu %.9g, %s %.9g (tol %.3g)", what, item, c->bad, c->n, c->first,
			  c->ref, gpu_label, c->got, c->tol);
	if (verbose && c->bad == 0 && c->worst > 0.0)
		printf("  %s, %s: worst |diff| / tol %.3g over %zu elements\n",
			   what, item, c->worst, c->n);
}

/* One check for the comparison of the reference with the contract. */
static void
cmp_report_ref(const Cmp *c, const char *what, const char *item)
{
	CHECK_MSG(c->bad == 0, "%s, %s: the cpu reference breaks the contract at %zu of %zu "
			  "elements; first [%zu]: expected %.9g, cpu %.9g", what, item, c->bad, c->n,
			  c->first, c->ref, c->got);
}

static void
free3(void *p[3])
{
	free(p[0]);
	free(p[1]);
	free(p[2]);
}

/* ---- mem_zero, copy ----------------------------------------------------- */

/* mem_zero and copy of bytes at unaligned offsets, against memset / memcpy. */
static void
check_zero_copy_case(size_t bytes, size_t off)
{
	size_t		total = off + bytes + 9,
				soff = off + 3;
	unsigned char *init = rand_bytes(total),
			   *src = rand_bytes(total),
			   *want_z = xmalloc(total),
			   *want_c = xmalloc(total);
	void	   *rz[3],
			   *rc[3];
	IsrfStatus	sz[3],
				sc[3];
	char		what[96];
	int			t;

	snprintf(what, sizeof(what), "mem_zero/copy %zu bytes at +%zu", bytes, off);
	memcpy(want_z, init, total);
	memset(want_z + off, 0, bytes);
	memcpy(want_c, init, total);
	memcpy(want_c + off, src + soff, bytes);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		unsigned char *d = to_backend(b, init, total);
		unsigned char *s = to_backend(b, src, total);

		sz[t] = finish(b, b->mem_zero(b, d + off, bytes));
		rz[t] = from_backend(b, d, total);
		upload(b, d, init, total);
		sc[t] = finish(b, b->copy(b, d + off, s + soff, bytes));
		rc[t] = from_backend(b, d, total);
		b->mem_free(b, d);
		b->mem_free(b, s);
	}
	check_status(what, sz);
	check_status(what, sc);
	check_bytes(what, "mem_zero", "memset", want_z, "cpu", rz[0], total);
	check_bytes(what, "mem_zero", "cpu", rz[0], gpu_label, rz[1], total);
	check_repeat(what, "mem_zero", rz[1], rz[2], total);
	check_bytes(what, "copy", "memcpy", want_c, "cpu", rc[0], total);
	check_bytes(what, "copy", "cpu", rc[0], gpu_label, rc[1], total);
	check_repeat(what, "copy", rc[1], rc[2], total);
	free(init);
	free(src);
	free(want_z);
	free(want_c);
	free3(rz);
	free3(rc);
}

static void
test_zero_copy(void)
{
	if (!NEED(mem_zero) || !NEED(copy))
		return;
	check_zero_copy_case(0, 0);
	check_zero_copy_case(1, 0);
	check_zero_copy_case(3, 1);
	check_zero_copy_case(4, 4);
	check_zero_copy_case(4099 * 4 + 3, 1);
	check_zero_copy_case((4 << 20) + 5, 4);
}

/* ---- gemm_batched -------------------------------------------------------- */

typedef struct GbCase
{
	bool		ta,
				tb;
	int			m,
				n,
				k;
	float		alpha,
				beta;
	int			lda,
				ldb,
				ldc;
	size_t		a_off,
				sa_o,
				sa_i;
	size_t		b_off,
				sb_o,
				sb_i;
	size_t		c_off,
				sc_o,
				sc_i;
	int			n_outer,
				n_inner;
	size_t		a_len,
				b_len,
				c_len;			/* floats of each buffer */
} GbCase;

/* One past the last float a batched operand of rows x cols uses. */
static size_t
gb_extent(int rows, int cols, int ld, size_t off, size_t so, size_t si, int no, int ni)
{
	if (rows <= 0 || cols <= 0 || no <= 0 || ni <= 0)
		return off + 1;
	return off + (size_t) (no - 1) * so + (size_t) (ni - 1) * si +
		(size_t) (rows - 1) * ld + (size_t) cols;
}

/* Run one batched product on b from host buffers; returns the host C. */
static float *
run_gb(IsrfBackend *b, const GbCase *g, const float *a, const float *bm,
	   const float *c, IsrfStatus *st)
{
	float	   *da = to_backend(b, a, sizeof(float) * g->a_len);
	float	   *db = to_backend(b, bm, sizeof(float) * g->b_len);
	float	   *dc = to_backend(b, c, sizeof(float) * g->c_len);
	float	   *out;

	*st = finish(b, b->gemm_batched(b, g->ta, g->tb, g->m, g->n, g->k, g->alpha,
									da + g->a_off, g->lda, g->sa_o, g->sa_i,
									db + g->b_off, g->ldb, g->sb_o, g->sb_i,
									g->beta, dc + g->c_off, g->ldc, g->sc_o, g->sc_i,
									g->n_outer, g->n_inner));
	out = from_backend(b, dc, sizeof(float) * g->c_len);
	b->mem_free(b, da);
	b->mem_free(b, db);
	b->mem_free(b, dc);
	return out;
}

/* Random operands for g; every product within tolerance, nothing else touched. */
static void
check_gb_case(const char *what, const GbCase *g)
{
	float	   *a = rand_floats(g->a_len, 1.0f),
			   *bm = rand_floats(g->b_len, 1.0f),
			   *c = rand_floats(g->c_len, 1.0f);
	float	   *res[3];
	uint8_t    *cover = calloc(g->c_len ? g->c_len : 1, 1);
	IsrfStatus	st[3];
	Cmp			prod,
				rest,
				rest_ref;
	char		lbl[160];
	int			t,
				o,
				i,
				r,
				col,
				p;
	size_t		e;

	snprintf(lbl, sizeof(lbl), "gemm_batched %s ta=%d tb=%d %dx%dx%d grid %dx%d beta %g",
			 what, g->ta, g->tb, g->m, g->n, g->k, g->n_outer, g->n_inner, g->beta);
	for (t = 0; t < 3; t++)
		res[t] = run_gb(runner(t), g, a, bm, c, &st[t]);
	check_status(lbl, st);
	cmp_init(&prod);
	cmp_init(&rest);
	cmp_init(&rest_ref);
	for (o = 0; o < g->n_outer; o++)
		for (i = 0; i < g->n_inner; i++)
		{
			const float *ao = a + g->a_off + o * g->sa_o + i * g->sa_i;
			const float *bo = bm + g->b_off + o * g->sb_o + i * g->sb_i;
			size_t		cbase = g->c_off + o * g->sc_o + i * g->sc_i;

			for (r = 0; r < g->m; r++)
				for (col = 0; col < g->n; col++)
				{
					size_t		ci = cbase + (size_t) r * g->ldc + col;
					double		scale = g->beta == 0.0f ? 0.0 : fabs((double) g->beta * c[ci]);

					for (p = 0; p < g->k; p++)
					{
						double		av = g->ta ? ao[(size_t) p * g->lda + r] : ao[(size_t) r * g->lda + p];
						double		bv = g->tb ? bo[(size_t) col * g->ldb + p] : bo[(size_t) p * g->ldb + col];

						scale += fabs(g->alpha * av * bv);
					}
					cover[ci] = 1;
					cmp_float(&prod, ci, res[0][ci], res[1][ci],
							  1e-5 * sqrt((double) (g->k > 1 ? g->k : 1)) * scale + 1e-30);
				}
		}
	for (e = 0; e < g->c_len; e++)
		if (!cover[e])
		{
			cmp_exact(&rest_ref, e, c[e], res[0][e]);
			cmp_exact(&rest, e, c[e], res[1][e]);
		}
	cmp_report(&prod, lbl, "products");
	cmp_report_ref(&rest_ref, lbl, "elements outside the products untouched");
	cmp_report(&rest, lbl, "elements outside the products untouched");
	check_repeat(lbl, "C", res[1], res[2], sizeof(float) * g->c_len);
	free(a);
	free(bm);
	free(c);
	free(cover);
	free3((void **) res);
}

/*
 * Separate blocks with gaps between them; swap makes the outer index the
 * fast one, shared_b gives every product the same B (strides 0).
 */
static void
check_gb_generic(bool ta, bool tb, int m, int n, int k, int pad, int no, int ni,
				 float alpha, float beta, bool swap, bool shared_b)
{
	GbCase		g;
	int			ar = ta ? k : m,
				ac = ta ? m : k,
				br = tb ? n : k,
				bc = tb ? k : n;
	size_t		ablk,
				bblk,
				cblk;

	memset(&g, 0, sizeof(g));
	g.ta = ta;
	g.tb = tb;
	g.m = m;
	g.n = n;
	g.k = k;
	g.alpha = alpha;
	g.beta = beta;
	g.lda = ac + pad > 0 ? ac + pad : 1;
	g.ldb = bc + pad > 0 ? bc + pad : 1;
	g.ldc = n + pad > 0 ? n + pad : 1;
	ablk = (size_t) ar * g.lda + 3;
	bblk = (size_t) br * g.ldb + 5;
	cblk = (size_t) m * g.ldc + 7;
	g.a_off = 1;
	g.b_off = 2;
	g.c_off = 3;
	if (!swap)
	{
		g.sa_i = ablk;
		g.sa_o = ablk * ni + 1;
		g.sb_i = bblk;
		g.sb_o = bblk * ni + 2;
		g.sc_i = cblk;
		g.sc_o = cblk * ni + 3;
	}
	else
	{
		g.sa_o = ablk;
		g.sa_i = ablk * no + 1;
		g.sb_o = bblk;
		g.sb_i = bblk * no + 2;
		g.sc_o = cblk;
		g.sc_i = cblk * no + 3;
	}
	if (shared_b)
		g.sb_o = g.sb_i = 0;
	g.a_len = gb_extent(ar, ac, g.lda, g.a_off, g.sa_o, g.sa_i, no, ni) + 4;
	g.b_len = gb_extent(br, bc, g.ldb, g.b_off, g.sb_o, g.sb_i, no, ni) + 4;
	g.c_len = gb_extent(m, n, g.ldc, g.c_off, g.sc_o, g.sc_i, no, ni) + 4;
	g.n_outer = no;
	g.n_inner = ni;
	check_gb_case(swap ? "blocks (outer fast)" : shared_b ? "blocks (shared B)" : "blocks", &g);
}

/* The three products of attention over qkv[nb, t, 3c] with nh heads. */
static void
check_gb_attention(int nb, int t, int c, int nh)
{
	GbCase		g;
	int			hs = c / nh;
	size_t		qkv = (size_t) nb * t * 3 * c,
				att = (size_t) nb * nh * t * t,
				act = (size_t) nb * t * c;

	/* S = scale Q K^T, one t x t matrix per (sequence, head) */
	memset(&g, 0, sizeof(g));
	g.tb = true;
	g.m = t;
	g.n = t;
	g.k = hs;
	g.alpha = 1.0f / sqrtf((float) hs);
	g.lda = 3 * c;
	g.sa_o = (size_t) t * 3 * c;
	g.sa_i = hs;
	g.ldb = 3 * c;
	g.b_off = c;
	g.sb_o = (size_t) t * 3 * c;
	g.sb_i = hs;
	g.ldc = t;
	g.sc_o = (size_t) nh * t * t;
	g.sc_i = (size_t) t * t;
	g.n_outer = nb;
	g.n_inner = nh;
	g.a_len = g.b_len = qkv;
	g.c_len = att;
	check_gb_case("attention scores", &g);

	/* out = P V into the heads' columns of out[nb, t, c], then accumulated */
	memset(&g, 0, sizeof(g));
	g.m = t;
	g.n = hs;
	g.k = t;
	g.alpha = 1.0f;
	g.lda = t;
	g.sa_o = (size_t) nh * t * t;
	g.sa_i = (size_t) t * t;
	g.ldb = 3 * c;
	g.b_off = 2 * c;
	g.sb_o = (size_t) t * 3 * c;
	g.sb_i = hs;
	g.ldc = c;
	g.sc_o = (size_t) t * c;
	g.sc_i = hs;
	g.n_outer = nb;
	g.n_inner = nh;
	g.a_len = att;
	g.b_len = qkv;
	g.c_len = act;
	check_gb_case("attention P V", &g);
	g.beta = 1.0f;
	check_gb_case("attention P V", &g);

	/* dV += P^T dY into the value columns of dqkv (Q and K untouched) */
	memset(&g, 0, sizeof(g));
	g.ta = true;
	g.m = t;
	g.n = hs;
	g.k = t;
	g.alpha = 1.0f;
	g.beta = 1.0f;
	g.lda = t;
	g.sa_o = (size_t) nh * t * t;
	g.sa_i = (size_t) t * t;
	g.ldb = c;
	g.sb_o = (size_t) t * c;
	g.sb_i = hs;
	g.ldc = 3 * c;
	g.c_off = 2 * c;
	g.sc_o = (size_t) t * 3 * c;
	g.sc_i = hs;
	g.n_outer = nb;
	g.n_inner = nh;
	g.a_len = att;
	g.b_len = act;
	g.c_len = qkv;
	check_gb_case("attention dV", &g);
}

static void
test_gemm_batched(void)
{
	int			ta,
				tb;

	if (!NEED(gemm_batched))
		return;
	for (ta = 0; ta < 2; ta++)
		for (tb = 0; tb < 2; tb++)
		{
			check_gb_generic(ta, tb, 5, 3, 7, 2, 3, 2, 0.75f, -0.5f, false, false);
			check_gb_generic(ta, tb, 33, 17, 9, 1, 2, 3, 1.0f, 0.0f, true, false);
		}
	check_gb_generic(true, false, 4, 6, 5, 1, 4, 1, 1.0f, 1.0f, false, true);
	check_gb_generic(false, true, 1, 1, 1, 0, 1, 1, 2.0f, 0.0f, false, false);
	check_gb_generic(false, false, 65, 31, 129, 3, 1, 5, -1.0f, 0.25f, false, false);
	/* empty grids and empty products */
	check_gb_generic(false, false, 5, 3, 7, 0, 0, 2, 1.0f, 0.5f, false, false);
	check_gb_generic(false, false, 5, 3, 7, 0, 2, 0, 1.0f, 0.5f, false, false);
	check_gb_generic(false, true, 0, 3, 7, 0, 2, 2, 1.0f, 0.5f, false, false);
	check_gb_generic(false, true, 4, 0, 7, 0, 2, 2, 1.0f, 0.5f, false, false);
	check_gb_generic(true, false, 4, 3, 0, 0, 2, 2, 1.0f, 2.0f, false, false);	/* C = 2 C */
	check_gb_attention(1, 1, 8, 2);
	check_gb_attention(3, 7, 8, 2);
	check_gb_attention(2, 50, 64, 2);
	check_gb_attention(2, 200, 64, 4);
}

/* ---- rows_set, colsum_acc, add ------------------------------------------ */

/* rows_set (bitwise, against the host) and colsum_acc on n x d. */
static void
check_rows_colsum_case(int n, int d)
{
	size_t		nd = (size_t) n * d;
	float	   *row = rand_floats(d, 1.0f),
			   *y0 = rand_floats(nd, 1.0f),
			   *x = rand_floats(nd, 1.0f),
			   *acc0 = rand_floats(d, 2.0f),
			   *want = xmalloc(sizeof(float) * nd);
	float	   *ry[3],
			   *ra[3];
	IsrfStatus	sy[3],
				sa[3];
	Cmp			cs;
	char		what[64];
	int			t,
				i,
				j;

	snprintf(what, sizeof(what), "rows_set/colsum_acc %dx%d", n, d);
	for (i = 0; i < n; i++)
		memcpy(want + (size_t) i * d, row, sizeof(float) * d);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dy = to_backend(b, y0, sizeof(float) * nd);
		float	   *dr = to_backend(b, row, sizeof(float) * d);
		float	   *dx = to_backend(b, x, sizeof(float) * nd);
		float	   *da = to_backend(b, acc0, sizeof(float) * d);

		sy[t] = finish(b, b->rows_set(b, dy, dr, n, d));
		sa[t] = finish(b, b->colsum_acc(b, da, dx, n, d));
		ry[t] = from_backend(b, dy, sizeof(float) * nd);
		ra[t] = from_backend(b, da, sizeof(float) * d);
		b->mem_free(b, dy);
		b->mem_free(b, dr);
		b->mem_free(b, dx);
		b->mem_free(b, da);
	}
	check_status(what, sy);
	check_status(what, sa);
	check_bytes(what, "rows_set", "host", want, "cpu", ry[0], sizeof(float) * nd);
	check_bytes(what, "rows_set", "cpu", ry[0], gpu_label, ry[1], sizeof(float) * nd);
	check_repeat(what, "rows_set", ry[1], ry[2], sizeof(float) * nd);
	cmp_init(&cs);
	for (j = 0; j < d; j++)
	{
		double		scale = fabs(acc0[j]);

		for (i = 0; i < n; i++)
			scale += fabs(x[(size_t) i * d + j]);
		cmp_float(&cs, j, ra[0][j], ra[1][j], 1e-5 * sqrt(n + 1.0) * scale);
	}
	cmp_report(&cs, what, "colsum_acc");
	check_repeat(what, "colsum_acc", ra[1], ra[2], sizeof(float) * d);
	free(row);
	free(y0);
	free(x);
	free(acc0);
	free(want);
	free3((void **) ry);
	free3((void **) ra);
}

/* out = a + b with out separate (alias 0), out = a (1) or out = b (2). */
static void
check_add_case(size_t n, int alias)
{
	float	   *a = rand_floats(n, 3.0f),
			   *bv = rand_floats(n, 1.0f),
			   *o0 = rand_floats(n, 1.0f),
			   *want = xmalloc(sizeof(float) * n);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[64];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "add n=%zu alias %d", n, alias);
	for (i = 0; i < n; i++)
		want[i] = a[i] + bv[i];
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *da = to_backend(b, a, sizeof(float) * n);
		float	   *db = to_backend(b, bv, sizeof(float) * n);
		float	   *dout = alias == 1 ? da : alias == 2 ? db : to_backend(b, o0, sizeof(float) * n);

		st[t] = finish(b, b->add(b, n, da, db, dout));
		res[t] = from_backend(b, dout, sizeof(float) * n);
		if (alias == 0)
			b->mem_free(b, dout);
		b->mem_free(b, da);
		b->mem_free(b, db);
	}
	check_status(what, st);
	check_bytes(what, "out", "host", want, "cpu", res[0], sizeof(float) * n);
	check_bytes(what, "out", "cpu", res[0], gpu_label, res[1], sizeof(float) * n);
	check_repeat(what, "out", res[1], res[2], sizeof(float) * n);
	free(a);
	free(bv);
	free(o0);
	free(want);
	free3((void **) res);
}

static void
test_rows_colsum_add(void)
{
	if (NEED(rows_set) && NEED(colsum_acc))
	{
		check_rows_colsum_case(0, 7);
		check_rows_colsum_case(5, 0);
		check_rows_colsum_case(1, 1);
		check_rows_colsum_case(3, 33);
		check_rows_colsum_case(257, 5);
		check_rows_colsum_case(1000, 3);
		check_rows_colsum_case(12800, 64);
	}
	if (NEED(add))
	{
		check_add_case(0, 0);
		check_add_case(1, 0);
		check_add_case(7, 1);
		check_add_case(4097, 2);
		check_add_case(1000003, 0);
		check_add_case(1000003, 1);
	}
}

/* ---- layernorm ------------------------------------------------------------ */

/*
 * Rows of several kinds when mixed: centred, offset by 3, constant, large
 * (1000) and small (1e-3) values.
 */
static float *
ln_input(int n, int c, bool mixed)
{
	float	   *x = rand_floats((size_t) n * c, 1.0f);
	int			i,
				j;

	for (i = 0; mixed && i < n; i++)
	{
		float	   *xi = x + (size_t) i * c;

		for (j = 0; j < c; j++)
			switch (i % 5)
			{
				case 1:
					xi[j] += 3.0f;
					break;
				case 2:
					xi[j] = xi[0];
					break;
				case 3:
					xi[j] *= 1000.0f;
					break;
				case 4:
					xi[j] *= 1e-3f;
					break;
				default:
					break;
			}
	}
	return x;
}

/* LayerNorm forward on b; out starts as out0 (it must be overwritten). */
static IsrfStatus
run_ln_forward(IsrfBackend *b, const float *x, const float *w, const float *bias,
			   const float *out0, int n, int c, float **out, float **mean, float **rstd)
{
	size_t		nc = (size_t) n * c;
	float	   *dx = to_backend(b, x, sizeof(float) * nc);
	float	   *dw = to_backend(b, w, sizeof(float) * c);
	float	   *db = to_backend(b, bias, sizeof(float) * c);
	float	   *dout = to_backend(b, out0, sizeof(float) * nc);
	float	   *dm = dev_alloc(b, sizeof(float) * n);
	float	   *dr = dev_alloc(b, sizeof(float) * n);
	IsrfStatus	st;

	st = finish(b, b->layernorm_forward(b, dout, dm, dr, dx, dw, db, n, c));
	*out = from_backend(b, dout, sizeof(float) * nc);
	*mean = from_backend(b, dm, sizeof(float) * n);
	*rstd = from_backend(b, dr, sizeof(float) * n);
	b->mem_free(b, dx);
	b->mem_free(b, dw);
	b->mem_free(b, db);
	b->mem_free(b, dout);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	return st;
}

/* Forward results of the device (g) against the reference (r). */
static void
check_ln_forward(const char *what, const float *x, const float *w, const float *bias,
				 int n, int c, const float *out_r, const float *mean_r, const float *rstd_r,
				 const float *out_g, const float *mean_g, const float *rstd_g)
{
	Cmp			cm,
				cr,
				co;
	double		sc = sqrt((double) c);
	int			i,
				j;

	cmp_init(&cm);
	cmp_init(&cr);
	cmp_init(&co);
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c;
		double		m = mean_r[i],
					r = rstd_r[i],
					abs_sum = 0.0;

		for (j = 0; j < c; j++)
			abs_sum += fabs(xi[j]);
		cmp_float(&cm, i, mean_r[i], mean_g[i], 1e-5 * sc * abs_sum / c + 1e-30);
		cmp_float(&cr, i, rstd_r[i], rstd_g[i], 1e-5 * sc * r * (1.0 + m * m * r * r));
		for (j = 0; j < c; j++)
		{
			size_t		e = (size_t) i * c + j;

			cmp_float(&co, e, out_r[e], out_g[e],
					  1e-5 * sc * ((fabs(xi[j]) + fabs(m)) * r * fabs(w[j]) + fabs(bias[j])) + 1e-30);
		}
	}
	cmp_report(&cm, what, "mean");
	cmp_report(&cr, what, "rstd");
	cmp_report(&co, what, "out");
}

/* LayerNorm backward on b; which bit 1: dx, 2: dw, 4: db (others NULL). */
static IsrfStatus
run_ln_backward(IsrfBackend *b, int which, const float *dx0, const float *dw0,
				const float *db0, const float *dout, const float *x, const float *w,
				const float *mean, const float *rstd, int n, int c,
				float **dx, float **dw, float **db, double *secs)
{
	size_t		nc = (size_t) n * c;
	float	   *ddx = to_backend(b, dx0, sizeof(float) * nc);
	float	   *ddw = to_backend(b, dw0, sizeof(float) * c);
	float	   *ddb = to_backend(b, db0, sizeof(float) * c);
	float	   *dg = to_backend(b, dout, sizeof(float) * nc);
	float	   *dxx = to_backend(b, x, sizeof(float) * nc);
	float	   *dww = to_backend(b, w, sizeof(float) * c);
	float	   *dm = to_backend(b, mean, sizeof(float) * n);
	float	   *dr = to_backend(b, rstd, sizeof(float) * n);
	IsrfStatus	st;
	double		t0;

	t0 = isrf_now();
	st = finish(b, b->layernorm_backward(b, (which & 1) ? ddx : NULL, (which & 2) ? ddw : NULL,
										 (which & 4) ? ddb : NULL, dg, dxx, dww, dm, dr, n, c));
	if (secs)
		*secs = isrf_now() - t0;
	*dx = from_backend(b, ddx, sizeof(float) * nc);
	*dw = from_backend(b, ddw, sizeof(float) * c);
	*db = from_backend(b, ddb, sizeof(float) * c);
	b->mem_free(b, ddx);
	b->mem_free(b, ddw);
	b->mem_free(b, ddb);
	b->mem_free(b, dg);
	b->mem_free(b, dxx);
	b->mem_free(b, dww);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	return st;
}

/* Backward results of the device (g) against the reference (r). */
static void
check_ln_backward(const char *what, int which, const float *dx0, const float *dw0,
				  const float *db0, const float *dout, const float *x, const float *w,
				  const float *mean, const float *rstd, int n, int c,
				  const float *dx_r, const float *dw_r, const float *db_r,
				  const float *dx_g, const float *dw_g, const float *db_g)
{
	Cmp			cx,
				cw,
				cb;
	double	   *sw = calloc(c, sizeof(double)),
			   *sb = calloc(c, sizeof(double));
	double		sc = sqrt((double) c),
				sn = sqrt(n + 1.0);
	int			i,
				j;

	cmp_init(&cx);
	cmp_init(&cw);
	cmp_init(&cb);
	for (i = 0; i < n; i++)
	{
		const float *xi = x + (size_t) i * c,
				   *gi = dout + (size_t) i * c;
		double		r = rstd[i],
					a1 = 0.0,
					a2 = 0.0;

		for (j = 0; j < c; j++)
		{
			double		xhat = ((double) xi[j] - mean[i]) * r;

			a1 += fabs((double) gi[j] * w[j]);
			a2 += fabs((double) gi[j] * w[j] * xhat);
			sw[j] += fabs(gi[j] * xhat);
			sb[j] += fabs(gi[j]);
		}
		a1 /= c;
		a2 /= c;
		for (j = 0; j < c && (which & 1); j++)
		{
			size_t		e = (size_t) i * c + j;
			double		xhat = ((double) xi[j] - mean[i]) * r;

			cmp_float(&cx, e, dx_r[e], dx_g[e],
					  1e-5 * sc * (r * (fabs((double) gi[j] * w[j]) + a1 + fabs(xhat) * a2) +
								   fabs(dx0[e])) + 1e-30);
		}
	}
	/* a gradient passed as NULL: the buffer the test holds stays as it was */
	for (j = 0; j < c; j++)
	{
		if (which & 2)
			cmp_float(&cw, j, dw_r[j], dw_g[j], 1e-5 * sn * (fabs(dw0[j]) + sw[j]) + 1e-30);
		else
			cmp_exact(&cw, j, dw0[j], dw_g[j]);
		if (which & 4)
			cmp_float(&cb, j, db_r[j], db_g[j], 1e-5 * sn * (fabs(db0[j]) + sb[j]) + 1e-30);
		else
			cmp_exact(&cb, j, db0[j], db_g[j]);
	}
	if (!(which & 1))
	{
		size_t		e;

		for (e = 0; e < (size_t) n * c; e++)
			cmp_exact(&cx, e, dx0[e], dx_g[e]);
	}
	cmp_report(&cx, what, (which & 1) ? "dx" : "dx (NULL: untouched)");
	cmp_report(&cw, what, (which & 2) ? "dw" : "dw (NULL: untouched)");
	cmp_report(&cb, what, (which & 4) ? "db" : "db (NULL: untouched)");
	free(sw);
	free(sb);
}

/* Forward and backward (with each pattern of NULL gradients) on n x c. */
static void
check_layernorm_case(int n, int c, bool mixed)
{
	size_t		nc = (size_t) n * c;
	float	   *x = ln_input(n, c, mixed),
			   *w = rand_floats(c, 1.0f),
			   *bias = rand_floats(c, 1.0f),
			   *out0 = rand_floats(nc, 1.0f),
			   *dout = rand_floats(nc, 1.0f),
			   *dx0 = rand_floats(nc, 1.0f),
			   *dw0 = rand_floats(c, 1.0f),
			   *db0 = rand_floats(c, 1.0f);
	float	   *out[3],
			   *mean[3],
			   *rstd[3];
	IsrfStatus	st[3];
	static const int patterns[] = {7, 1, 6, 0};
	char		what[96];
	size_t		pi;
	int			t,
				j;

	for (j = 0; j < c; j++)
		w[j] += w[j] >= 0.0f ? 0.5f : -0.5f;
	snprintf(what, sizeof(what), "layernorm_forward %dx%d%s", n, c, mixed ? " mixed rows" : "");
	for (t = 0; t < 3; t++)
		st[t] = run_ln_forward(runner(t), x, w, bias, out0, n, c, &out[t], &mean[t], &rstd[t]);
	check_status(what, st);
	check_ln_forward(what, x, w, bias, n, c, out[0], mean[0], rstd[0], out[1], mean[1], rstd[1]);
	check_repeat(what, "out", out[1], out[2], sizeof(float) * nc);
	check_repeat(what, "mean", mean[1], mean[2], sizeof(float) * n);
	check_repeat(what, "rstd", rstd[1], rstd[2], sizeof(float) * n);

	/* backward from the reference's statistics on both sides */
	for (pi = 0; pi < sizeof(patterns) / sizeof(patterns[0]); pi++)
	{
		float	   *dx[3],
				   *dw[3],
				   *db[3];

		snprintf(what, sizeof(what), "layernorm_backward %dx%d%s grads %s%s%s", n, c,
				 mixed ? " mixed rows" : "", (patterns[pi] & 1) ? "dx " : "",
				 (patterns[pi] & 2) ? "dw " : "", (patterns[pi] & 4) ? "db" : "");
		for (t = 0; t < 3; t++)
			st[t] = run_ln_backward(runner(t), patterns[pi], dx0, dw0, db0, dout, x, w,
									mean[0], rstd[0], n, c, &dx[t], &dw[t], &db[t], NULL);
		check_status(what, st);
		check_ln_backward(what, patterns[pi], dx0, dw0, db0, dout, x, w, mean[0], rstd[0],
						  n, c, dx[0], dw[0], db[0], dx[1], dw[1], db[1]);
		check_repeat(what, "dx", dx[1], dx[2], sizeof(float) * nc);
		check_repeat(what, "dw", dw[1], dw[2], sizeof(float) * c);
		check_repeat(what, "db", db[1], db[2], sizeof(float) * c);
		free3((void **) dx);
		free3((void **) dw);
		free3((void **) db);
	}
	free(x);
	free(w);
	free(bias);
	free(out0);
	free(dout);
	free(dx0);
	free(dw0);
	free(db0);
	free3((void **) out);
	free3((void **) mean);
	free3((void **) rstd);
}

static void
test_layernorm(void)
{
	if (!NEED(layernorm_forward) || !NEED(layernorm_backward))
		return;
	check_layernorm_case(0, 5, false);
	check_layernorm_case(1, 1, false);
	check_layernorm_case(1, 7, false);
	check_layernorm_case(3, 33, true);
	check_layernorm_case(64, 64, false);
	check_layernorm_case(257, 100, true);
	check_layernorm_case(1000, 64, true);
	check_layernorm_case(200, 768, true);
	check_layernorm_case(5, 4099, true);
}

/* ---- gelu ----------------------------------------------------------------- */

/* Values in (-4, 4) with special ones sprinkled in (zeros, tiny, saturated). */
static float *
gelu_input(size_t n)
{
	static const float special[] = {0.0f, -0.0f, 1e-20f, -1e-20f, 3.0f, -3.0f,
		10.0f, -10.0f, 20.0f, -20.0f, 100.0f, -100.0f, 0.5f, -0.5f};
	float	   *x = rand_floats(n, 4.0f);
	size_t		i;

	for (i = 0; i < n; i += 17)
		x[i] = special[(i / 17) % (sizeof(special) / sizeof(special[0]))];
	return x;
}

/* gelu forward (out separate or aliasing x) and backward on n elements. */
static void
check_gelu_case(size_t n, bool alias)
{
	float	   *x = gelu_input(n),
			   *o0 = rand_floats(n, 1.0f),
			   *dout = rand_floats(n, 1.0f),
			   *dx0 = rand_floats(n, 1.0f);
	float	   *fo[3],
			   *bo[3];
	IsrfStatus	sf[3],
				sb[3];
	Cmp			cf,
				cb;
	char		what[64];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "gelu n=%zu%s", n, alias ? " in place" : "");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);
		float	   *dout_f = alias ? dx : to_backend(b, o0, sizeof(float) * n);
		float	   *dg = to_backend(b, dout, sizeof(float) * n);
		float	   *dacc = to_backend(b, dx0, sizeof(float) * n);

		/* backward first: in place, forward overwrites x */
		sb[t] = finish(b, b->gelu_backward(b, dacc, dx, dg, n));
		sf[t] = finish(b, b->gelu_forward(b, dout_f, dx, n));
		fo[t] = from_backend(b, dout_f, sizeof(float) * n);
		bo[t] = from_backend(b, dacc, sizeof(float) * n);
		if (!alias)
			b->mem_free(b, dout_f);
		b->mem_free(b, dx);
		b->mem_free(b, dg);
		b->mem_free(b, dacc);
	}
	check_status(what, sf);
	check_status(what, sb);
	cmp_init(&cf);
	cmp_init(&cb);
	for (i = 0; i < n; i++)
	{
		double		ax = fabs(x[i]);
		double		du = 1.0 + ax * PARITY_GELU_K * (1.0 + 3.0 * PARITY_GELU_C * ax * ax);

		cmp_float(&cf, i, fo[0][i], fo[1][i], 1e-6 * (ax > 1.0 ? ax : 1.0));
		cmp_float(&cb, i, bo[0][i], bo[1][i], 2e-6 * du * fabs(dout[i]) + 1e-6 * fabs(dx0[i]));
	}
	cmp_report(&cf, what, "forward");
	cmp_report(&cb, what, "backward");
	check_repeat(what, "forward", fo[1], fo[2], sizeof(float) * n);
	check_repeat(what, "backward", bo[1], bo[2], sizeof(float) * n);
	free(x);
	free(o0);
	free(dout);
	free(dx0);
	free3((void **) fo);
	free3((void **) bo);
}

static void
test_gelu(void)
{
	if (!NEED(gelu_forward) || !NEED(gelu_backward))
		return;
	check_gelu_case(0, false);
	check_gelu_case(1, false);
	check_gelu_case(3, true);
	check_gelu_case(4, false);
	check_gelu_case(5, false);
	check_gelu_case(4099, true);
	check_gelu_case(1000003, false);
}

/* ---- dropout -------------------------------------------------------------- */

/* The keep decision of the contract (backend.h), computed here. */
static bool
dropout_keep(uint64_t s, size_t i, float p)
{
	uint32_t	thr = (uint32_t) ((double) p * 16777216.0);

	return (uint32_t) (isrf_nn_hash64(s + PARITY_GOLDEN * (i + 1)) >> 40) >= thr;
}

/* Dropout forward (separate or in place) and backward on n elements. */
static void
check_dropout_case(size_t n, float p, uint64_t s, bool alias)
{
	float	   *x = rand_floats(n, 2.0f),
			   *o0 = rand_floats(n, 1.0f),
			   *dout = rand_floats(n, 1.0f),
			   *dx0 = rand_floats(n, 1.0f);
	float	   *fo[3],
			   *bo[3];
	IsrfStatus	sf[3],
				sb[3];
	Cmp			pat_ref,
				pat,
				val,
				bpat_ref,
				bpat,
				bval;
	float		scale = 1.0f / (1.0f - p);
	char		what[96];
	size_t		i;
	int			t;

	snprintf(what, sizeof(what), "dropout n=%zu p=%g seed %llu%s", n, p,
			 (unsigned long long) s, alias ? " in place" : "");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);
		float	   *dout_f = alias ? dx : to_backend(b, o0, sizeof(float) * n);
		float	   *dg = to_backend(b, dout, sizeof(float) * n);
		float	   *dacc = to_backend(b, dx0, sizeof(float) * n);

		sf[t] = finish(b, b->dropout_forward(b, dout_f, dx, n, p, s));
		sb[t] = finish(b, b->dropout_backward(b, dacc, dg, n, p, s));
		fo[t] = from_backend(b, dout_f, sizeof(float) * n);
		bo[t] = from_backend(b, dacc, sizeof(float) * n);
		if (!alias)
			b->mem_free(b, dout_f);
		b->mem_free(b, dx);
		b->mem_free(b, dg);
		b->mem_free(b, dacc);
	}
	check_status(what, sf);
	check_status(what, sb);
	cmp_init(&pat_ref);
	cmp_init(&pat);
	cmp_init(&val);
	cmp_init(&bpat_ref);
	cmp_init(&bpat);
	cmp_init(&bval);
	for (i = 0; i < n; i++)
	{
		bool		keep = dropout_keep(s, i, p);
		float		kept = x[i] * scale;	/* never 0: |x| >= 2^-23 */

		if (p == 0.0f)
		{
			/* a copy and a plain add: bitwise */
			cmp_exact(&pat_ref, i, x[i], fo[0][i]);
			cmp_exact(&val, i, fo[0][i], fo[1][i]);
			cmp_exact(&bpat_ref, i, dx0[i] + dout[i], bo[0][i]);
			cmp_exact(&bval, i, bo[0][i], bo[1][i]);
			continue;
		}
		/* the zero pattern is the contract's mask, on both sides */
		cmp_exact(&pat_ref, i, keep ? 1.0f : 0.0f, fo[0][i] != 0.0f ? 1.0f : 0.0f);
		cmp_exact(&pat, i, fo[0][i] != 0.0f ? 1.0f : 0.0f, fo[1][i] != 0.0f ? 1.0f : 0.0f);
		if (keep)
		{
			cmp_float(&val, i, fo[0][i], fo[1][i], 1e-6 * fabs(kept));
			cmp_float(&bval, i, bo[0][i], bo[1][i],
					  1e-6 * (fabs(dx0[i]) + 2.0 * fabs(dout[i] * scale)));
		}
		else
		{
			/* dropped: dx keeps its value exactly */
			cmp_exact(&bpat_ref, i, dx0[i], bo[0][i]);
			cmp_exact(&bpat, i, dx0[i], bo[1][i]);
		}
	}
	cmp_report_ref(&pat_ref, what, p == 0.0f ? "forward copies" : "forward mask");
	cmp_report(&pat, what, "forward zero pattern");
	cmp_report(&val, what, "forward values");
	cmp_report_ref(&bpat_ref, what, p == 0.0f ? "backward adds" : "backward dropped elements");
	cmp_report(&bpat, what, "backward dropped elements");
	cmp_report(&bval, what, "backward values");
	check_repeat(what, "forward", fo[1], fo[2], sizeof(float) * n);
	check_repeat(what, "backward", bo[1], bo[2], sizeof(float) * n);
	free(x);
	free(o0);
	free(dout);
	free(dx0);
	free3((void **) fo);
	free3((void **) bo);
}

static void
test_dropout(void)
{
	if (!NEED(dropout_forward) || !NEED(dropout_backward))
		return;
	check_dropout_case(0, 0.1f, 1, false);
	check_dropout_case(1, 0.1f, 7, false);
	check_dropout_case(5, 0.0f, 7, false);
	check_dropout_case(5, 0.0f, 7, true);
	check_dropout_case(4099, 0.1f, 0, true);
	check_dropout_case(1000003, 0.0f, 42, false);
	check_dropout_case(1000003, 0.1f, 42, false);
	check_dropout_case(1000003, 0.1f, UINT64_MAX, true);
	check_dropout_case(65537, 0.5f, 123456789, false);
	check_dropout_case(65537, 0.95f, 99, false);
}

/* ---- attention softmax ---------------------------------------------------- */

typedef enum
{
	VALID_ALL,					/* valid = NULL */
	VALID_LEFT,					/* left padding; sequence q%4==2 all invalid */
	VALID_GAPS					/* random flags (1 or 2), sequence 0 all invalid */
} ValidKind;

/* valid[n_seq, t] of a kind (NULL for VALID_ALL). */
static uint8_t *
make_valid(int n_seq, int t, ValidKind kind)
{
	uint8_t    *v;
	int			q,
				j;

	if (kind == VALID_ALL)
		return NULL;
	v = xmalloc((size_t) n_seq * t);
	for (q = 0; q < n_seq; q++)
	{
		int			len = (q % 4 == 0) ? t : (q % 4 == 1) ? (t + 1) / 2 : (q % 4 == 2) ? 0 : 1;

		for (j = 0; j < t; j++)
		{
			uint8_t    *f = v + (size_t) q * t + j;

			if (kind == VALID_LEFT)
				*f = j >= t - len ? 1 : 0;
			else
				*f = (q == 0 || rand_below(10) < 3) ? 0 : (uint8_t) (1 + rand_below(2));
		}
	}
	return v;
}

/* attn_softmax_forward on b from scores s0; returns the host probabilities. */
static float *
run_attn_forward(IsrfBackend *b, const float *s0, const uint8_t *valid, int n_seq,
				 int nh, int t, IsrfStatus *st, double *secs)
{
	size_t		len = (size_t) n_seq * nh * t * t;
	float	   *ds = to_backend(b, s0, sizeof(float) * len);
	uint8_t    *dv = valid ? to_backend(b, valid, (size_t) n_seq * t) : NULL;
	float	   *out;
	double		t0;

	if (secs)
	{
		/* a first call for the timing: kernel loading, then fresh scores */
		*st = finish(b, b->attn_softmax_forward(b, ds, dv, n_seq, nh, t));
		upload(b, ds, s0, sizeof(float) * len);
	}
	t0 = isrf_now();
	*st = finish(b, b->attn_softmax_forward(b, ds, dv, n_seq, nh, t));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, ds, sizeof(float) * len);
	b->mem_free(b, ds);
	if (dv)
		b->mem_free(b, dv);
	return out;
}

/* Probabilities of the device (g) against the reference (r). */
static void
check_attn_forward(const char *what, const float *s0, const uint8_t *valid, int n_seq,
				   int nh, int t, const float *pr, const float *pg)
{
	Cmp			cp,
				cz;
	int			q,
				h,
				r,
				j;

	cmp_init(&cp);
	cmp_init(&cz);
	for (q = 0; q < n_seq; q++)
		for (h = 0; h < nh; h++)
			for (r = 0; r < t; r++)
			{
				size_t		base = (((size_t) q * nh + h) * t + r) * t;
				const uint8_t *vq = valid ? valid + (size_t) q * t : NULL;
				bool		row_ok = !vq || vq[r];
				double		mx = -INFINITY,
							mn = INFINITY;
				int			keys = 0;

				for (j = 0; j <= r && row_ok; j++)
					if (!vq || vq[j])
					{
						mx = fmax(mx, s0[base + j]);
						mn = fmin(mn, s0[base + j]);
						keys++;
					}
				for (j = 0; j < t; j++)
				{
					size_t		e = base + j;

					if (!row_ok || j > r || (vq && !vq[j]))
						cmp_zero(&cz, e, pr[e], pg[e]);
					else
						cmp_float(&cp, e, pr[e], pg[e],
								  pr[e] * (2e-6 * sqrt((double) keys) +
										   1e-6 * (1.0 + (mx - s0[e]) + (mx - mn))) + 1e-30);
				}
			}
	cmp_report(&cp, what, "probabilities");
	cmp_report(&cz, what, "masked, future and invalid entries are 0");
}

/* attn_softmax_backward on b; returns the host gradient. */
static float *
run_attn_backward(IsrfBackend *b, const float *ds0, const float *p, int n_mat, int t,
				  IsrfStatus *st, double *secs)
{
	size_t		len = (size_t) n_mat * t * t;
	float	   *dds = to_backend(b, ds0, sizeof(float) * len);
	float	   *dp = to_backend(b, p, sizeof(float) * len);
	float	   *out;
	double		t0;

	if (secs)
	{
		*st = finish(b, b->attn_softmax_backward(b, dds, dp, n_mat, t));
		upload(b, dds, ds0, sizeof(float) * len);
	}
	t0 = isrf_now();
	*st = finish(b, b->attn_softmax_backward(b, dds, dp, n_mat, t));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, dds, sizeof(float) * len);
	b->mem_free(b, dds);
	b->mem_free(b, dp);
	return out;
}

/* Softmax gradients of the device (g) against the reference (r). */
static void
check_attn_backward(const char *what, const float *ds0, const float *p, int n_mat, int t,
					const float *gr, const float *gg)
{
	Cmp			cg,
				cz;
	int			q,
				r,
				j;

	cmp_init(&cg);
	cmp_init(&cz);
	for (q = 0; q < n_mat; q++)
		for (r = 0; r < t; r++)
		{
			size_t		base = ((size_t) q * t + r) * t;
			double		dot_abs = 0.0;

			for (j = 0; j <= r; j++)
				dot_abs += fabs((double) p[base + j] * ds0[base + j]);
			for (j = 0; j < t; j++)
			{
				size_t		e = base + j;

				if (j > r)
					cmp_zero(&cz, e, gr[e], gg[e]);
				else
					cmp_float(&cg, e, gr[e], gg[e],
							  1e-5 * sqrt(r + 1.0) * p[e] * (fabs(ds0[e]) + dot_abs) + 1e-30);
			}
		}
	cmp_report(&cg, what, "gradient");
	cmp_report(&cz, what, "future entries are 0");
}

/* Forward on random scores, then backward from the reference's probabilities. */
static void
check_attn_case(int n_seq, int nh, int t, ValidKind kind, float score_scale)
{
	size_t		len = (size_t) n_seq * nh * t * t;
	float	   *s0 = rand_floats(len, score_scale),
			   *ds0 = rand_floats(len, 1.0f);
	uint8_t    *valid = make_valid(n_seq, t, kind);
	float	   *pf[3],
			   *gb[3];
	IsrfStatus	st[3];
	char		what[128];
	int			tt;

	snprintf(what, sizeof(what), "attn_softmax_forward %d seq x %d heads t=%d valid %s scores x%g",
			 n_seq, nh, t, kind == VALID_ALL ? "NULL" : kind == VALID_LEFT ? "left-padded" : "gaps",
			 score_scale);
	for (tt = 0; tt < 3; tt++)
		pf[tt] = run_attn_forward(runner(tt), s0, valid, n_seq, nh, t, &st[tt], NULL);
	check_status(what, st);
	check_attn_forward(what, s0, valid, n_seq, nh, t, pf[0], pf[1]);
	check_repeat(what, "probabilities", pf[1], pf[2], sizeof(float) * len);

	snprintf(what, sizeof(what), "attn_softmax_backward %d mat t=%d (valid %s)", n_seq * nh, t,
			 kind == VALID_ALL ? "NULL" : kind == VALID_LEFT ? "left-padded" : "gaps");
	for (tt = 0; tt < 3; tt++)
		gb[tt] = run_attn_backward(runner(tt), ds0, pf[0], n_seq * nh, t, &st[tt], NULL);
	check_status(what, st);
	check_attn_backward(what, ds0, pf[0], n_seq * nh, t, gb[0], gb[1]);
	check_repeat(what, "gradient", gb[1], gb[2], sizeof(float) * len);
	free(s0);
	free(ds0);
	free(valid);
	free3((void **) pf);
	free3((void **) gb);
}

static void
test_attention(void)
{
	if (!NEED(attn_softmax_forward) || !NEED(attn_softmax_backward))
		return;
	check_attn_case(0, 2, 5, VALID_ALL, 3.0f);
	check_attn_case(2, 0, 5, VALID_LEFT, 3.0f);
	check_attn_case(1, 1, 0, VALID_ALL, 3.0f);
	check_attn_case(1, 1, 1, VALID_ALL, 3.0f);
	check_attn_case(4, 1, 1, VALID_LEFT, 3.0f);		/* t = 1, one sequence all invalid */
	check_attn_case(4, 3, 7, VALID_LEFT, 3.0f);
	check_attn_case(5, 2, 33, VALID_GAPS, 3.0f);
	check_attn_case(3, 2, 50, VALID_ALL, 50.0f);	/* exps down to e^-100 */
	check_attn_case(8, 2, 50, VALID_LEFT, 3.0f);
	check_attn_case(4, 4, 200, VALID_LEFT, 3.0f);
	check_attn_case(2, 2, 200, VALID_GAPS, 8.0f);
	check_attn_case(2, 1, 200, VALID_ALL, 3.0f);
}

/* ---- softmax cross-entropy ------------------------------------------------ */

typedef enum
{
	CE_LOSS_ONLY,				/* dlogits = NULL */
	CE_SEPARATE,				/* dlogits its own buffer */
	CE_IN_PLACE					/* dlogits = logits */
} CeMode;

/* softmax_ce on b; *loss gets row_loss[n], *dl the dlogits buffer (n x ld). */
static IsrfStatus
run_ce(IsrfBackend *b, const float *logits, int ld, const int32_t *targets, int n, int v,
	   float gs, CeMode mode, const float *dl0, float **loss, float **dl, double *secs)
{
	size_t		len = (size_t) n * ld;
	float	   *dlog = to_backend(b, logits, sizeof(float) * len);
	int32_t    *dt = to_backend(b, targets, sizeof(int32_t) * n);
	float	   *dloss = dev_alloc(b, sizeof(float) * n);
	float	   *dg = mode == CE_SEPARATE ? to_backend(b, dl0, sizeof(float) * len) :
		mode == CE_IN_PLACE ? dlog : NULL;
	IsrfStatus	st = ISRF_OK;
	double		t0;

	if (secs)
	{
		st = finish(b, b->softmax_ce(b, dlog, ld, dt, n, v, gs, dloss, dg));
		upload(b, dlog, logits, sizeof(float) * len);
	}
	t0 = isrf_now();
	if (st == ISRF_OK)
		st = finish(b, b->softmax_ce(b, dlog, ld, dt, n, v, gs, dloss, dg));
	if (secs)
		*secs = isrf_now() - t0;
	*loss = from_backend(b, dloss, sizeof(float) * n);
	*dl = dg ? from_backend(b, dg, sizeof(float) * len) : NULL;
	b->mem_free(b, dlog);
	b->mem_free(b, dt);
	b->mem_free(b, dloss);
	if (mode == CE_SEPARATE)
		b->mem_free(b, dg);
	return st;
}

/* Loss and gradient of the device (g) against the reference (r). */
static void
check_ce(const char *what, const float *logits, int ld, const int32_t *targets, int n,
		 int v, float gs, const float *dl0, const float *loss_r, const float *loss_g,
		 const float *dl_r, const float *dl_g)
{
	Cmp			cl,
				cg,
				cz,
				cpad;
	double		sv = sqrt((double) v),
				lv = log((double) v);
	int			i,
				j;

	cmp_init(&cl);
	cmp_init(&cg);
	cmp_init(&cz);
	cmp_init(&cpad);
	for (i = 0; i < n; i++)
	{
		const float *li = logits + (size_t) i * ld;
		size_t		base = (size_t) i * ld;
		int32_t		y = targets[i];
		double		mx = -INFINITY,
					mn = INFINITY,
					sum = 0.0;

		if (y < 0)
		{
			cmp_zero(&cz, i, loss_r[i], loss_g[i]);
			for (j = 0; j < v && dl_r; j++)
				cmp_zero(&cz, base + j, dl_r[base + j], dl_g[base + j]);
		}
		else
		{
			for (j = 0; j < v; j++)
			{
				mx = fmax(mx, li[j]);
				mn = fmin(mn, li[j]);
			}
			for (j = 0; j < v; j++)
				sum += exp(li[j] - mx);
			cmp_float(&cl, i, loss_r[i], loss_g[i],
					  2e-6 * sv + 1e-6 * (2.0 + (mx - mn) + fabs(mx) + fabs(li[y]) + lv));
			for (j = 0; j < v && dl_r; j++)
			{
				double		p = exp(li[j] - mx) / sum;
				double		tol = fabs(gs) * (p * (2e-6 * sv + 1e-6 * (1.0 + (mx - li[j]) + (mx - mn))) +
											  (j == y ? 1e-6 : 0.0) + 1e-30);

				cmp_float(&cg, base + j, dl_r[base + j], dl_g[base + j], tol);
			}
		}
		/* the padding columns past v are not written */
		for (j = v; j < ld && dl_r; j++)
			cmp_exact(&cpad, base + j, dl0[base + j], dl_g[base + j]);
	}
	cmp_report(&cl, what, "row_loss");
	if (dl_r)
		cmp_report(&cg, what, "dlogits");
	cmp_report(&cz, what, "ignored rows are 0");
	if (dl_r)
		cmp_report(&cpad, what, "padding columns untouched");
}

/* n rows of v classes (leading dimension v + pad); some targets ignored. */
static void
check_ce_case(int n, int v, int pad, float scale, float gs, CeMode mode, bool all_ignored)
{
	int			ld = v + pad;
	size_t		len = (size_t) n * ld;
	float	   *logits = rand_floats(len, scale),
			   *dl0 = mode == CE_IN_PLACE ? logits : rand_floats(len, 1.0f);
	int32_t    *targets = xmalloc(sizeof(int32_t) * (n > 0 ? n : 1));
	float	   *loss[3],
			   *dl[3];
	IsrfStatus	st[3];
	char		what[128];
	int			i,
				t;

	for (i = 0; i < n; i++)
		targets[i] = all_ignored || i % 5 == 3 ? -1 : i % 11 == 7 ? -7 : rand_below(v);
	if (n > 0 && v > 1 && !all_ignored)
		targets[0] = v - 1;		/* the last class, once */
	snprintf(what, sizeof(what), "softmax_ce %dx%d ld %d logits x%g grad_scale %g %s%s",
			 n, v, ld, scale, gs, mode == CE_LOSS_ONLY ? "loss only" :
			 mode == CE_SEPARATE ? "dlogits" : "dlogits in place",
			 all_ignored ? " all ignored" : "");
	for (t = 0; t < 3; t++)
		st[t] = run_ce(runner(t), logits, ld, targets, n, v, gs, mode, dl0,
					   &loss[t], &dl[t], NULL);
	check_status(what, st);
	check_ce(what, logits, ld, targets, n, v, gs, dl0, loss[0], loss[1], dl[0], dl[1]);
	check_repeat(what, "row_loss", loss[1], loss[2], sizeof(float) * n);
	if (dl[1])
		check_repeat(what, "dlogits", dl[1], dl[2], sizeof(float) * len);
	free(logits);
	if (dl0 != logits)
		free((void *) dl0);
	free(targets);
	free3((void **) loss);
	free3((void **) dl);
}

static void
test_softmax_ce(void)
{
	if (!NEED(softmax_ce))
		return;
	check_ce_case(0, 5, 0, 1.0f, 1.0f, CE_SEPARATE, false);
	check_ce_case(1, 1, 0, 1.0f, 1.0f, CE_SEPARATE, false);		/* v = 1 */
	check_ce_case(6, 1, 3, 1.0f, 0.5f, CE_IN_PLACE, false);
	check_ce_case(5, 7, 3, 1.0f, 1.0f, CE_SEPARATE, false);
	check_ce_case(5, 7, 3, 1.0f, 1.0f, CE_LOSS_ONLY, false);
	check_ce_case(4, 33, 0, 1.0f, 1.0f, CE_SEPARATE, true);
	check_ce_case(64, 1000, 1, 1.0f, 1.0f / 64, CE_SEPARATE, false);
	check_ce_case(64, 1000, 0, 30.0f, 1.0f / 64, CE_IN_PLACE, false);
	check_ce_case(16, 50000, 0, 1.0f, 1.0f / 16, CE_SEPARATE, false);
	check_ce_case(16, 50000, 5, 10.0f, 2.0f, CE_IN_PLACE, false);
	check_ce_case(300, 12101, 0, 3.0f, 1.0f / 300, CE_SEPARATE, false);
	check_ce_case(37, 4097, 2, 1.0f, 1.0f, CE_LOSS_ONLY, false);
}

/* ---- gather, scatter-add, mask -------------------------------------------- */

/* n ids into rows rows: duplicates, a few negative ones (-1 and others). */
static int32_t *
make_ids(int n, int rows)
{
	int32_t    *ids = xmalloc(sizeof(int32_t) * (n > 0 ? n : 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		int			u = rand_below(10);

		ids[i] = u == 0 ? -1 : u == 1 ? -1 - rand_below(1000) : rand_below(rows);
		if (i > 0 && u == 2)
			ids[i] = ids[i - 1] >= 0 ? ids[i - 1] : 0;	/* adjacent duplicate */
	}
	if (n > 1 && rows > 0)
		ids[n - 1] = ids[0] = rows - 1;
	return ids;
}

/* gather_rows, overwriting and accumulating: bitwise against the host loop. */
static void
check_gather_case(int n, int d, int rows, bool accumulate)
{
	size_t		nd = (size_t) n * d;
	float	   *table = rand_floats((size_t) rows * d, 1.0f),
			   *o0 = rand_floats(nd, 1.0f),
			   *want = xmalloc(sizeof(float) * nd);
	int32_t    *ids = make_ids(n, rows);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[96];
	int			i,
				j,
				t;

	snprintf(what, sizeof(what), "gather_rows %d ids x %d from %d rows%s", n, d, rows,
			 accumulate ? " accumulating" : "");
	for (i = 0; i < n; i++)
		for (j = 0; j < d; j++)
		{
			size_t		e = (size_t) i * d + j;
			float		tv = ids[i] >= 0 ? table[(size_t) ids[i] * d + j] : 0.0f;

			want[e] = accumulate ? (ids[i] >= 0 ? o0[e] + tv : o0[e]) : tv;
		}
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dt = to_backend(b, table, sizeof(float) * rows * d);
		float	   *dout = to_backend(b, o0, sizeof(float) * nd);
		int32_t    *di = to_backend(b, ids, sizeof(int32_t) * n);

		st[t] = finish(b, b->gather_rows(b, dout, di, n, dt, d, accumulate));
		res[t] = from_backend(b, dout, sizeof(float) * nd);
		b->mem_free(b, dt);
		b->mem_free(b, dout);
		b->mem_free(b, di);
	}
	check_status(what, st);
	check_bytes(what, "out", "host", want, "cpu", res[0], sizeof(float) * nd);
	check_bytes(what, "out", "cpu", res[0], gpu_label, res[1], sizeof(float) * nd);
	check_repeat(what, "out", res[1], res[2], sizeof(float) * nd);
	free(table);
	free(o0);
	free(want);
	free(ids);
	free3((void **) res);
}

/* scatter_add_rows on b; returns the host table. */
static float *
run_scatter(IsrfBackend *b, const float *table0, int rows, const int32_t *ids, int n,
			const float *src, int d, IsrfStatus *st, double *secs)
{
	size_t		tl = (size_t) rows * d;
	float	   *dt = to_backend(b, table0, sizeof(float) * tl);
	int32_t    *di = to_backend(b, ids, sizeof(int32_t) * n);
	float	   *ds = to_backend(b, src, sizeof(float) * n * d);
	float	   *out;
	double		t0;

	if (secs)
	{
		*st = finish(b, b->scatter_add_rows(b, dt, di, n, ds, d));
		upload(b, dt, table0, sizeof(float) * tl);
	}
	t0 = isrf_now();
	*st = finish(b, b->scatter_add_rows(b, dt, di, n, ds, d));
	if (secs)
		*secs = isrf_now() - t0;
	out = from_backend(b, dt, sizeof(float) * tl);
	b->mem_free(b, dt);
	b->mem_free(b, di);
	b->mem_free(b, ds);
	return out;
}

/*
 * Scatter-add results of the device (g) against the reference (r); the
 * reference must equal the plain ascending loop bitwise.
 */
static void
check_scatter(const char *what, const float *table0, int rows, const int32_t *ids, int n,
			  const float *src, int d, const float *tr, const float *tg)
{
	size_t		tl = (size_t) rows * d;
	float	   *plain = xmalloc(sizeof(float) * tl);
	double	   *scale = xmalloc(sizeof(double) * tl);
	int		   *cnt = calloc(rows > 0 ? rows : 1, sizeof(int));
	Cmp			c;
	size_t		e;
	int			i,
				j;

	memcpy(plain, table0, sizeof(float) * tl);
	for (e = 0; e < tl; e++)
		scale[e] = fabs(table0[e]);
	for (i = 0; i < n; i++)
	{
		if (ids[i] < 0)
			continue;
		cnt[ids[i]]++;
		for (j = 0; j < d; j++)
		{
			e = (size_t) ids[i] * d + j;
			plain[e] += src[(size_t) i * d + j];
			scale[e] += fabs(src[(size_t) i * d + j]);
		}
	}
	check_bytes(what, "table", "plain loop", plain, "cpu", tr, sizeof(float) * tl);
	cmp_init(&c);
	for (e = 0; e < tl; e++)
		cmp_float(&c, e, tr[e], tg[e], 1e-5 * sqrt(cnt[e / d] + 1.0) * scale[e]);
	cmp_report(&c, what, "table");
	free(plain);
	free(scale);
	free(cnt);
}

/* scatter_add_rows of n rows of d into rows rows. */
static void
check_scatter_case(int n, int d, int rows)
{
	float	   *table0 = rand_floats((size_t) rows * d, 1.0f),
			   *src = rand_floats((size_t) n * d, 1.0f);
	int32_t    *ids = make_ids(n, rows);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[96];
	int			t;

	snprintf(what, sizeof(what), "scatter_add_rows %d ids x %d into %d rows", n, d, rows);
	for (t = 0; t < 3; t++)
		res[t] = run_scatter(runner(t), table0, rows, ids, n, src, d, &st[t], NULL);
	check_status(what, st);
	check_scatter(what, table0, rows, ids, n, src, d, res[0], res[1]);
	check_repeat(what, "table", res[1], res[2], sizeof(float) * rows * d);
	free(table0);
	free(src);
	free(ids);
	free3((void **) res);
}

/* mask_rows with flags 0, 1 and 2 (any non-zero keeps the row). */
static void
check_mask_case(int n, int d)
{
	size_t		nd = (size_t) n * d;
	float	   *x = rand_floats(nd, 1.0f),
			   *want = xmalloc(sizeof(float) * nd);
	uint8_t    *valid = xmalloc(n > 0 ? n : 1);
	float	   *res[3];
	IsrfStatus	st[3];
	char		what[64];
	int			i,
				t;

	snprintf(what, sizeof(what), "mask_rows %dx%d", n, d);
	for (i = 0; i < n; i++)
		valid[i] = (uint8_t) rand_below(3);
	if (n > 0)
		valid[0] = 0;
	memcpy(want, x, sizeof(float) * nd);
	for (i = 0; i < n; i++)
		if (!valid[i])
			memset(want + (size_t) i * d, 0, sizeof(float) * d);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * nd);
		uint8_t    *dv = to_backend(b, valid, n);

		st[t] = finish(b, b->mask_rows(b, dx, dv, n, d));
		res[t] = from_backend(b, dx, sizeof(float) * nd);
		b->mem_free(b, dx);
		b->mem_free(b, dv);
	}
	check_status(what, st);
	check_bytes(what, "x", "host", want, "cpu", res[0], sizeof(float) * nd);
	check_bytes(what, "x", "cpu", res[0], gpu_label, res[1], sizeof(float) * nd);
	check_repeat(what, "x", res[1], res[2], sizeof(float) * nd);
	free(x);
	free(want);
	free(valid);
	free3((void **) res);
}

static void
test_rows_ops(void)
{
	if (NEED(gather_rows))
	{
		check_gather_case(0, 4, 3, false);
		check_gather_case(1, 1, 1, false);
		check_gather_case(1, 1, 1, true);
		check_gather_case(7, 33, 5, false);
		check_gather_case(7, 33, 5, true);
		check_gather_case(1000, 64, 12101, false);
		check_gather_case(12800, 3, 50, true);
	}
	if (NEED(scatter_add_rows))
	{
		check_scatter_case(0, 4, 3);
		check_scatter_case(1, 1, 1);
		check_scatter_case(7, 33, 3);
		check_scatter_case(1000, 5, 10);	/* ~90 contributions per row */
		check_scatter_case(5000, 1, 2);		/* thousands per row */
		check_scatter_case(3000, 65, 12101);
	}
	if (NEED(mask_rows))
	{
		check_mask_case(0, 3);
		check_mask_case(1, 1);
		check_mask_case(7, 33);
		check_mask_case(12800, 64);
		check_mask_case(5, 0);
	}
}

/* ---- AdamW, sumsq ---------------------------------------------------------- */

/* One AdamW step of n parameters at step number step, decay mask or NULL. */
static void
check_adamw_case(size_t n, int step, float lr, float wd, bool with_mask)
{
	const float b1 = 0.9f,
				b2 = 0.999f,
				eps = 1e-8f;
	float		c1 = (float) (1.0 / (1.0 - pow(b1, (double) step))),
				c2 = (float) (1.0 / (1.0 - pow(b2, (double) step)));
	float	   *p0 = rand_floats(n, 1.0f),
			   *g = rand_floats(n, 0.01f),
			   *m0 = rand_floats(n, 0.01f),
			   *v0 = rand_floats(n, 0.01f);
	uint8_t    *mask = with_mask ? xmalloc(n ? n : 1) : NULL;
	float	   *rp[3],
			   *rm[3],
			   *rv[3];
	IsrfStatus	st[3];
	Cmp			cp,
				cm,
				cv;
	char		what[96];
	size_t		i;
	int			t;

	for (i = 0; i < n; i++)
	{
		v0[i] = (i % 13 == 5) ? 0.0f : v0[i] * v0[i];
		if (i % 7 == 3)
			g[i] = 0.0f;
		if (i % 13 == 5)
		{
			/* no gradient ever: m = v = 0, only the decay moves it */
			g[i] = 0.0f;
			m0[i] = 0.0f;
		}
		if (mask)
			mask[i] = (uint8_t) rand_below(3);
	}
	snprintf(what, sizeof(what), "adamw_step n=%zu step %d lr %g wd %g decay %s", n, step,
			 lr, wd, with_mask ? "mask" : "NULL");
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dp = to_backend(b, p0, sizeof(float) * n);
		float	   *dg = to_backend(b, g, sizeof(float) * n);
		float	   *dm = to_backend(b, m0, sizeof(float) * n);
		float	   *dv = to_backend(b, v0, sizeof(float) * n);
		uint8_t    *dk = mask ? to_backend(b, mask, n) : NULL;

		st[t] = finish(b, b->adamw_step(b, dp, dg, dm, dv, dk, n, lr, b1, b2, eps, wd, c1, c2));
		rp[t] = from_backend(b, dp, sizeof(float) * n);
		rm[t] = from_backend(b, dm, sizeof(float) * n);
		rv[t] = from_backend(b, dv, sizeof(float) * n);
		b->mem_free(b, dp);
		b->mem_free(b, dg);
		b->mem_free(b, dm);
		b->mem_free(b, dv);
		if (dk)
			b->mem_free(b, dk);
	}
	check_status(what, st);
	cmp_init(&cp);
	cmp_init(&cm);
	cmp_init(&cv);
	for (i = 0; i < n; i++)
	{
		double		ms = fabs((double) b1 * m0[i]) + fabs((1.0 - b1) * g[i]),
					vs = fabs((double) b2 * v0[i]) + fabs((1.0 - b2) * g[i] * g[i]),
					den = sqrt((double) rv[0][i] * c2) + eps;

		cmp_float(&cm, i, rm[0][i], rm[1][i], 1e-6 * ms);
		cmp_float(&cv, i, rv[0][i], rv[1][i], 1e-6 * vs);
		cmp_float(&cp, i, rp[0][i], rp[1][i], 2e-6 * (fabs(p0[i]) + lr * c1 * ms / den));
	}
	cmp_report(&cp, what, "params");
	cmp_report(&cm, what, "m");
	cmp_report(&cv, what, "v");
	check_repeat(what, "params", rp[1], rp[2], sizeof(float) * n);
	check_repeat(what, "m", rm[1], rm[2], sizeof(float) * n);
	check_repeat(what, "v", rv[1], rv[2], sizeof(float) * n);
	free(p0);
	free(g);
	free(m0);
	free(v0);
	free(mask);
	free3((void **) rp);
	free3((void **) rm);
	free3((void **) rv);
}

/* sumsq of n values of magnitude up to scale. */
static void
check_sumsq_case(size_t n, float scale)
{
	float	   *x = rand_floats(n, scale);
	double		res[3],
				tol;
	IsrfStatus	st[3];
	char		what[64];
	int			t;

	snprintf(what, sizeof(what), "sumsq n=%zu scale %g", n, scale);
	for (t = 0; t < 3; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *dx = to_backend(b, x, sizeof(float) * n);

		res[t] = -1.0;
		st[t] = finish(b, b->sumsq(b, dx, n, &res[t]));
		b->mem_free(b, dx);
	}
	check_status(what, st);
	tol = self_mode ? 0.0 : 1e-12 * sqrt(n + 1.0) * res[0];
	CHECK_MSG(fabs(res[1] - res[0]) <= tol && isfinite(res[1]),
			  "%s: cpu %.17g, %s %.17g (tol %.3g)", what, res[0], gpu_label, res[1], tol);
	CHECK_MSG(memcmp(&res[1], &res[2], sizeof(double)) == 0, "%s: two %s runs differ",
			  what, gpu_label);
	free(x);
}

static void
test_adamw_sumsq(void)
{
	if (NEED(adamw_step))
	{
		check_adamw_case(0, 1, 1e-3f, 0.01f, false);
		check_adamw_case(1, 1, 1e-3f, 0.01f, false);
		check_adamw_case(7, 1, 1e-3f, 0.01f, true);
		check_adamw_case(4099, 10, 3e-4f, 0.0f, true);
		check_adamw_case(1000003, 1, 1e-3f, 0.01f, false);
		check_adamw_case(1000003, 1000, 1e-3f, 0.1f, true);
	}
	if (NEED(sumsq))
	{
		check_sumsq_case(0, 1.0f);
		check_sumsq_case(1, 1.0f);
		check_sumsq_case(7, 3.0f);
		check_sumsq_case(4099, 1.0f);
		check_sumsq_case(1000003, 1.0f);
		check_sumsq_case(1000, 1e20f);	/* squares overflow float, not double */
	}
}

/* ---- errors ---------------------------------------------------------------- */

/* st is ISRF_ERR_INVALID with a message in env. */
static void
expect_invalid(IsrfBackend *b, IsrfStatus st, const char *call)
{
	CHECK_MSG(st == ISRF_ERR_INVALID && env.errmsg[0] != '\0',
			  "%s on %s: status %d (want ISRF_ERR_INVALID), message \"%s\"",
			  call, b == cpu ? "cpu" : gpu_label, (int) st, env.errmsg);
	env.errmsg[0] = '\0';
}

/* Negative sizes (and a short leading dimension) on both backends. */
static void
test_errors(void)
{
	int			t;

	for (t = 0; t < 2; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *f = dev_alloc(b, sizeof(float) * 256);
		uint8_t    *u8 = (uint8_t *) f;
		int32_t    *i32 = (int32_t *) f;

		env.errmsg[0] = '\0';
		if (b->gemm_batched)
		{
			expect_invalid(b, b->gemm_batched(b, false, false, -1, 2, 2, 1.0f, f, 2, 0, 0, f, 2, 0, 0,
											  0.0f, f, 2, 0, 0, 1, 1), "gemm_batched m=-1");
			expect_invalid(b, b->gemm_batched(b, false, false, 2, 2, -1, 1.0f, f, 2, 0, 0, f, 2, 0, 0,
											  0.0f, f, 2, 0, 0, 1, 1), "gemm_batched k=-1");
			expect_invalid(b, b->gemm_batched(b, false, false, 2, 2, 2, 1.0f, f, 2, 4, 0, f, 2, 4, 0,
											  0.0f, f, 2, 4, 0, -1, 1), "gemm_batched n_outer=-1");
			expect_invalid(b, b->gemm_batched(b, false, false, 2, 2, 2, 1.0f, f, 2, 0, 4, f, 2, 0, 4,
											  0.0f, f, 2, 0, 4, 1, -1), "gemm_batched n_inner=-1");
			expect_invalid(b, b->gemm_batched(b, false, false, 2, 3, 2, 1.0f, f, 2, 0, 0, f, 3, 0, 0,
											  0.0f, f, 2, 0, 0, 1, 1), "gemm_batched ldc < n");
		}
		if (b->rows_set)
		{
			expect_invalid(b, b->rows_set(b, f, f, -1, 2), "rows_set n=-1");
			expect_invalid(b, b->rows_set(b, f, f, 2, -1), "rows_set d=-1");
		}
		if (b->colsum_acc)
		{
			expect_invalid(b, b->colsum_acc(b, f, f, -1, 2), "colsum_acc n=-1");
			expect_invalid(b, b->colsum_acc(b, f, f, 2, -1), "colsum_acc d=-1");
		}
		if (b->layernorm_forward)
		{
			expect_invalid(b, b->layernorm_forward(b, f, f, f, f, f, f, -1, 4), "layernorm_forward n=-1");
			expect_invalid(b, b->layernorm_forward(b, f, f, f, f, f, f, 2, -1), "layernorm_forward c=-1");
		}
		if (b->layernorm_backward)
		{
			expect_invalid(b, b->layernorm_backward(b, f, f, f, f, f, f, f, f, -1, 4), "layernorm_backward n=-1");
			expect_invalid(b, b->layernorm_backward(b, f, f, f, f, f, f, f, f, 2, -1), "layernorm_backward c=-1");
		}
		if (b->attn_softmax_forward)
		{
			expect_invalid(b, b->attn_softmax_forward(b, f, NULL, -1, 1, 2), "attn_softmax_forward n_seq=-1");
			expect_invalid(b, b->attn_softmax_forward(b, f, u8, 1, -1, 2), "attn_softmax_forward n_heads=-1");
			expect_invalid(b, b->attn_softmax_forward(b, f, NULL, 1, 1, -2), "attn_softmax_forward t=-2");
		}
		if (b->attn_softmax_backward)
		{
			expect_invalid(b, b->attn_softmax_backward(b, f, f, -1, 2), "attn_softmax_backward n_mat=-1");
			expect_invalid(b, b->attn_softmax_backward(b, f, f, 1, -1), "attn_softmax_backward t=-1");
		}
		if (b->softmax_ce)
		{
			expect_invalid(b, b->softmax_ce(b, f, 4, i32, -1, 4, 1.0f, f, NULL), "softmax_ce n=-1");
			expect_invalid(b, b->softmax_ce(b, f, 4, i32, 2, -4, 1.0f, f, f), "softmax_ce v=-4");
			expect_invalid(b, b->softmax_ce(b, f, 3, i32, 2, 4, 1.0f, f, f), "softmax_ce ld < v");
		}
		if (b->gather_rows)
		{
			expect_invalid(b, b->gather_rows(b, f, i32, -1, f, 2, false), "gather_rows n=-1");
			expect_invalid(b, b->gather_rows(b, f, i32, 2, f, -1, true), "gather_rows d=-1");
		}
		if (b->scatter_add_rows)
		{
			expect_invalid(b, b->scatter_add_rows(b, f, i32, -1, f, 2), "scatter_add_rows n=-1");
			expect_invalid(b, b->scatter_add_rows(b, f, i32, 2, f, -1), "scatter_add_rows d=-1");
		}
		if (b->mask_rows)
		{
			expect_invalid(b, b->mask_rows(b, f, u8, -1, 2), "mask_rows n=-1");
			expect_invalid(b, b->mask_rows(b, f, u8, 2, -1), "mask_rows d=-1");
		}
		b->mem_free(b, f);
	}
}

/* ---- timings ----------------------------------------------------------------- */

/* LayerNorm forward + backward on n x c; returns seconds (after a warm-up). */
static double
time_layernorm(IsrfBackend *b, const float *x, const float *w, const float *bias,
			   const float *dout, int n, int c, float **out, float **dx)
{
	size_t		nc = (size_t) n * c;
	float	   *dxx = to_backend(b, x, sizeof(float) * nc);
	float	   *dw = to_backend(b, w, sizeof(float) * c);
	float	   *db = to_backend(b, bias, sizeof(float) * c);
	float	   *dg = to_backend(b, dout, sizeof(float) * nc);
	float	   *dout_f = dev_alloc(b, sizeof(float) * nc);
	float	   *dm = dev_alloc(b, sizeof(float) * n);
	float	   *dr = dev_alloc(b, sizeof(float) * n);
	float	   *gx = dev_alloc(b, sizeof(float) * nc);
	float	   *gw = dev_alloc(b, sizeof(float) * c);
	float	   *gb = dev_alloc(b, sizeof(float) * c);
	double		t0,
				secs = 0.0;
	int			rep;

	for (rep = 0; rep < 2; rep++)
	{
		IsrfStatus	st;

		/* the second pass is timed; gradients start from zero in each */
		CHECK(b->mem_zero(b, gx, sizeof(float) * nc) == ISRF_OK);
		CHECK(b->mem_zero(b, gw, sizeof(float) * c) == ISRF_OK);
		CHECK(b->mem_zero(b, gb, sizeof(float) * c) == ISRF_OK);
		CHECK(b->sync(b) == ISRF_OK);
		t0 = isrf_now();
		st = b->layernorm_forward(b, dout_f, dm, dr, dxx, dw, db, n, c);
		if (st == ISRF_OK)
			st = b->layernorm_backward(b, gx, gw, gb, dg, dxx, dw, dm, dr, n, c);
		st = finish(b, st);
		secs = isrf_now() - t0;
		CHECK_MSG(st == ISRF_OK, "layernorm timing on %s: %s", b->name, env.errmsg);
	}
	*out = from_backend(b, dout_f, sizeof(float) * nc);
	*dx = from_backend(b, gx, sizeof(float) * nc);
	b->mem_free(b, dxx);
	b->mem_free(b, dw);
	b->mem_free(b, db);
	b->mem_free(b, dg);
	b->mem_free(b, dout_f);
	b->mem_free(b, dm);
	b->mem_free(b, dr);
	b->mem_free(b, gx);
	b->mem_free(b, gw);
	b->mem_free(b, gb);
	return secs;
}

static void
timings(void)
{
	if (cpu->layernorm_forward && gpu->layernorm_forward &&
		cpu->layernorm_backward && gpu->layernorm_backward && cpu->mem_zero && gpu->mem_zero)
	{
		int			n = 12800,
					c = 64;
		size_t		nc = (size_t) n * c;
		float	   *x = ln_input(n, c, false),
				   *w = rand_floats(c, 1.0f),
				   *bias = rand_floats(c, 1.0f),
				   *dout = rand_floats(nc, 1.0f);
		float	   *oc,
				   *og,
				   *xc,
				   *xg;
		double		sc,
					sg;

		sc = time_layernorm(cpu, x, w, bias, dout, n, c, &oc, &xc);
		sg = time_layernorm(gpu, x, w, bias, dout, n, c, &og, &xg);
		CHECK_MSG(unit_max_abs_diff(oc, og, nc) <= (self_mode ? 0.0 : 1e-4) &&
				  unit_max_abs_diff(xc, xg, nc) <= (self_mode ? 0.0 : 1e-3),
				  "layernorm timing case: out diff %g, dx diff %g",
				  unit_max_abs_diff(oc, og, nc), unit_max_abs_diff(xc, xg, nc));
		printf("timing: layernorm fwd+bwd %dx%d: cpu %.4f s, %s %.5f s\n", n, c, sc, gpu_label, sg);
		free(x);
		free(w);
		free(bias);
		free(dout);
		free(oc);
		free(og);
		free(xc);
		free(xg);
	}
	if (cpu->attn_softmax_forward && gpu->attn_softmax_forward &&
		cpu->attn_softmax_backward && gpu->attn_softmax_backward)
	{
		static const int shapes[][3] = {{256, 2, 50}, {64, 2, 200}};
		size_t		k;

		for (k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++)
		{
			int			n_seq = shapes[k][0],
						nh = shapes[k][1],
						t = shapes[k][2];
			size_t		len = (size_t) n_seq * nh * t * t;
			float	   *s0 = rand_floats(len, 3.0f),
					   *ds0 = rand_floats(len, 1.0f);
			uint8_t    *valid = make_valid(n_seq, t, VALID_LEFT);
			float	   *pc,
					   *pg,
					   *gc,
					   *gg;
			IsrfStatus	st;
			double		fc,
						fg,
						bc,
						bg;
			char		what[96];

			snprintf(what, sizeof(what), "attention softmax timing %dx%dx%d", n_seq, nh, t);
			pc = run_attn_forward(cpu, s0, valid, n_seq, nh, t, &st, &fc);
			CHECK(st == ISRF_OK);
			pg = run_attn_forward(gpu, s0, valid, n_seq, nh, t, &st, &fg);
			CHECK(st == ISRF_OK);
			check_attn_forward(what, s0, valid, n_seq, nh, t, pc, pg);
			gc = run_attn_backward(cpu, ds0, pc, n_seq * nh, t, &st, &bc);
			CHECK(st == ISRF_OK);
			gg = run_attn_backward(gpu, ds0, pc, n_seq * nh, t, &st, &bg);
			CHECK(st == ISRF_OK);
			check_attn_backward(what, ds0, pc, n_seq * nh, t, gc, gg);
			printf("timing: attention softmax %d seq x %d heads x t=%d: forward cpu %.4f s, %s %.5f s; "
				   "backward cpu %.4f s, %s %.5f s\n",
				   n_seq, nh, t, fc, gpu_label, fg, bc, gpu_label, bg);
			free(s0);
			free(ds0);
			free(valid);
			free(pc);
			free(pg);
			free(gc);
			free(gg);
		}
	}
	if (cpu->softmax_ce && gpu->softmax_ce)
	{
		int			n = 2048,
					v = 12101,
					i;
		float	   *logits = rand_floats((size_t) n * v, 3.0f);
		int32_t    *targets = xmalloc(sizeof(int32_t) * n);
		float	   *lc,
				   *lg,
				   *dc,
				   *dg;
		double		sc,
					sg;

		for (i = 0; i < n; i++)
			targets[i] = i % 10 == 9 ? -1 : rand_below(v);
		CHECK(run_ce(cpu, logits, v, targets, n, v, 1.0f / n, CE_SEPARATE, logits, &lc, &dc, &sc) == ISRF_OK);
		CHECK(run_ce(gpu, logits, v, targets, n, v, 1.0f / n, CE_SEPARATE, logits, &lg, &dg, &sg) == ISRF_OK);
		check_ce("softmax_ce timing", logits, v, targets, n, v, 1.0f / n, logits, lc, lg, dc, dg);
		printf("timing: softmax_ce %dx%d with dlogits: cpu %.4f s, %s %.5f s\n",
			   n, v, sc, gpu_label, sg);
		free(logits);
		free(targets);
		free(lc);
		free(lg);
		free(dc);
		free(dg);
	}
	if (cpu->scatter_add_rows && gpu->scatter_add_rows)
	{
		int			n = 12800,
					d = 64,
					rows = 12101,
					i;
		float	   *table0 = rand_floats((size_t) rows * d, 1.0f),
				   *src = rand_floats((size_t) n * d, 1.0f);
		int32_t    *ids = xmalloc(sizeof(int32_t) * n);
		float	   *tc,
				   *tg;
		IsrfStatus	st;
		double		sc,
					sg;

		/* item ids of a training batch: popular items repeat, some padding */
		for (i = 0; i < n; i++)
			ids[i] = i % 8 == 0 ? -1 : (int32_t) (rand_below(rows) * (double) rand_below(rows) / rows);
		tc = run_scatter(cpu, table0, rows, ids, n, src, d, &st, &sc);
		CHECK(st == ISRF_OK);
		tg = run_scatter(gpu, table0, rows, ids, n, src, d, &st, &sg);
		CHECK(st == ISRF_OK);
		check_scatter("scatter_add_rows timing", table0, rows, ids, n, src, d, tc, tg);
		printf("timing: scatter_add_rows %d x %d into %d rows: cpu %.4f s, %s %.5f s\n",
			   n, d, rows, sc, gpu_label, sg);
		free(table0);
		free(src);
		free(ids);
		free(tc);
		free(tg);
	}
}

int
main(void)
{
	const char *verb = getenv("ISRF_PARITY_VERBOSE");
	char		desc[512];

	self_mode = parity_self_mode();
	verbose = verb != NULL && verb[0] != '\0' && strcmp(verb, "0") != 0;
	if (!parity_open(self_mode))
		return 0;
	if (self_mode)
		gpu_label = "cpu#2";
	if (!self_mode)
		CHECK(strcmp(gpu->name, "cuda") == 0);
	CHECK(gpu->abi == ISRF_BACKEND_ABI && cpu->abi == ISRF_BACKEND_ABI);
	CHECK(gpu->describe(gpu, desc, sizeof(desc)) == ISRF_OK);
	printf("backend: %s%s\n", desc,
		   self_mode ? " (ISRF_PARITY_SELF: a second CPU backend, comparisons bitwise)" : "");
	CHECK(cpu->describe(cpu, desc, sizeof(desc)) == ISRF_OK);
	printf("reference: %s\n", desc);

	test_zero_copy();
	test_gemm_batched();
	test_rows_colsum_add();
	test_layernorm();
	test_gelu();
	test_dropout();
	test_attention();
	test_softmax_ce();
	test_rows_ops();
	test_adamw_sumsq();
	test_errors();
	timings();
	isrf_backend_close(gpu);
	isrf_backend_close(cpu);
	UNIT_END("test_parity_nn");
}
