/*
 * test_parity_nn_gemm.c
 *	  GPU-vs-CPU parity of gemm_batched, the grid of products of attention:
 *	  every transpose, padded leading dimensions, gaps between blocks, the
 *	  outer or the inner index fast, a B shared by every product, empty
 *	  grids and products, k = 0, and the three products of attention (scores,
 *	  P V, dV) at t = 1 to 200.  parity_nn.h says how the parity tests run.
 *
 * Tolerance: 1e-5 sqrt(k) (|alpha| sum_p |a b| + |beta c|), as gemm in
 * test_parity; elements outside the products must be untouched (bitwise).
 */
#define PARITY_NAME "test_parity_nn_gemm"
#include "parity_nn.h"

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

/* ---- bad shapes ------------------------------------------------------------ */

static void
refusals(IsrfBackend *b, float *f)
{
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
}

int
main(void)
{
	if (!parity_nn_open())
		return 0;
	test_gemm_batched();
	parity_nn_refusals(refusals);
	parity_nn_close();
	UNIT_END(PARITY_NAME);
}
