/*
 * compute/cpu_backend.c
 *	  The CPU backend: OpenBLAS for dense products, plain loops for the rest.
 *	  It is the reference every other backend is checked against.
 *
 * OpenBLAS starts a thread pool when it is loaded, and isrf.so is loaded into
 * the postmaster, so the BLAS is never linked: it is looked up with dlopen the
 * first time a CPU backend is created (in a backend process or a tool), with
 * every signal blocked so that its threads never receive PostgreSQL's
 * signals.  Without any BLAS library the backend still works, on plain loops.
 */
#include "compute/backend.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the subset of cblas.h we use; values fixed by the CBLAS standard */
#define CPU_CBLAS_ROW_MAJOR 101
#define CPU_CBLAS_NO_TRANS 111
#define CPU_CBLAS_TRANS 112

typedef void (*CpuSgemmFn) (int order, int ta, int tb, int m, int n, int k,
							float alpha, const float *a, int lda,
							const float *b, int ldb, float beta,
							float *c, int ldc);

typedef void (*CpuSetThreadsFn) (int n);

static CpuSgemmFn cpu_sgemm = NULL;
static CpuSetThreadsFn cpu_set_threads = NULL;
static bool cpu_blas_probed = false;
static char cpu_blas_name[128] = "none (plain loops)";

/* Every allocation carries this header so destroy can release leftovers. */
typedef struct CpuBlock
{
	struct CpuBlock *prev;
	struct CpuBlock *next;
	char		pad[64 - 2 * sizeof(void *)];
} CpuBlock;

typedef struct CpuImpl
{
	CpuBlock	head;			/* circular list of live blocks */
} CpuImpl;

struct IsrfDevCsr
{
	IsrfCsr		m;				/* a private host copy */
};

static IsrfStatus
cpu_load_blas_blocked(void *arg)
{
	static const char *const candidates[] = {
		"libopenblas.so.0", "libopenblas.so", "libblas.so.3", "libcblas.so.3"
	};
	const char *forced = getenv("ISRF_BLAS_LIBRARY");
	void	   *sym;
	size_t		i;

	(void) arg;
	sym = dlsym(RTLD_DEFAULT, "cblas_sgemm");
	if (sym)
	{
		cpu_sgemm = (CpuSgemmFn) sym;
		snprintf(cpu_blas_name, sizeof(cpu_blas_name), "cblas (linked)");
		return ISRF_OK;
	}
	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]) + 1; i++)
	{
		const char *lib = (i == 0) ? forced : candidates[i - 1];
		void	   *h;

		if (lib == NULL)
			continue;
		h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
		if (h == NULL)
			continue;
		sym = dlsym(h, "cblas_sgemm");
		if (sym)
		{
			cpu_sgemm = (CpuSgemmFn) sym;
			cpu_set_threads = (CpuSetThreadsFn) dlsym(h, "openblas_set_num_threads");
			snprintf(cpu_blas_name, sizeof(cpu_blas_name), "%s", lib);
			return ISRF_OK;
		}
		dlclose(h);
	}
	return ISRF_OK;
}

static void
cpu_gemm_plain(bool ta, bool tb, int m, int n, int k, float alpha,
			   const float *a, int lda, const float *b, int ldb,
			   float beta, float *c, int ldc)
{
	int			i,
				j,
				p;

	for (i = 0; i < m; i++)
	{
		float	   *ci = c + (size_t) i * ldc;

		for (j = 0; j < n; j++)
			ci[j] = (beta == 0.0f) ? 0.0f : beta * ci[j];
		for (p = 0; p < k; p++)
		{
			float		aip = alpha * (ta ? a[(size_t) p * lda + i] : a[(size_t) i * lda + p]);

			if (aip == 0.0f)
				continue;
			if (!tb)
			{
				const float *bp = b + (size_t) p * ldb;

				for (j = 0; j < n; j++)
					ci[j] += aip * bp[j];
			}
			else
				for (j = 0; j < n; j++)
					ci[j] += aip * b[(size_t) j * ldb + p];
		}
	}
}

static IsrfStatus
cpu_gemm(IsrfBackend *be, bool ta, bool tb, int m, int n, int k, float alpha,
		 const float *a, int lda, const float *b, int ldb, float beta,
		 float *c, int ldc)
{
	if (m < 0 || n < 0 || k < 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "gemm: negative dimension (m=%d, n=%d, k=%d)", m, n, k);
	if (m == 0 || n == 0)
		return ISRF_OK;
	/* the same checks as the CUDA backend, so both fail alike */
	if (ldc < n)
		return isrf_fail(be->env, ISRF_ERR_INVALID, "gemm: ldc=%d is less than n=%d", ldc, n);
	if (k > 0 && alpha != 0.0f && (lda < (ta ? m : k) || ldb < (tb ? k : n)))
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "gemm: leading dimension too small (lda=%d needs %d, ldb=%d needs %d)",
						 lda, ta ? m : k, ldb, tb ? k : n);
	if (cpu_sgemm)
		cpu_sgemm(CPU_CBLAS_ROW_MAJOR,
				  ta ? CPU_CBLAS_TRANS : CPU_CBLAS_NO_TRANS,
				  tb ? CPU_CBLAS_TRANS : CPU_CBLAS_NO_TRANS,
				  m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	else
		cpu_gemm_plain(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
	return ISRF_OK;
}

static IsrfStatus
cpu_mem_alloc(IsrfBackend *be, size_t bytes, void **out)
{
	CpuImpl    *impl = be->impl;
	CpuBlock   *blk;

	if (bytes > SIZE_MAX - sizeof(CpuBlock))
		return isrf_fail(be->env, ISRF_ERR_NOMEM, "allocation of %zu bytes overflows", bytes);
	blk = isrf_calloc(be->env, 1, sizeof(CpuBlock) + bytes);
	if (blk == NULL)
		return ISRF_ERR_NOMEM;
	blk->next = impl->head.next;
	blk->prev = &impl->head;
	impl->head.next->prev = blk;
	impl->head.next = blk;
	*out = blk + 1;
	return ISRF_OK;
}

static void
cpu_mem_free(IsrfBackend *be, void *ptr)
{
	CpuBlock   *blk;

	if (ptr == NULL)
		return;
	blk = (CpuBlock *) ptr - 1;
	blk->prev->next = blk->next;
	blk->next->prev = blk->prev;
	isrf_free(be->env, blk);
}

static IsrfStatus
cpu_copy(IsrfBackend *be, void *dst, const void *src, size_t bytes)
{
	(void) be;
	if (bytes)
		memmove(dst, src, bytes);
	return ISRF_OK;
}

static IsrfStatus
cpu_sync(IsrfBackend *be)
{
	(void) be;
	return ISRF_OK;
}

static IsrfStatus
cpu_describe(IsrfBackend *be, char *buf, size_t len)
{
	(void) be;
	snprintf(buf, len, "cpu (BLAS: %s)", cpu_blas_name);
	return ISRF_OK;
}

static IsrfStatus
cpu_csr_create(IsrfBackend *be, const IsrfCsr *host, IsrfDevCsr **out)
{
	IsrfDevCsr *d;

	ISRF_TRY(isrf_csr_validate(be->env, host));
	d = isrf_calloc(be->env, 1, sizeof(IsrfDevCsr));
	if (d == NULL)
		return ISRF_ERR_NOMEM;
	if (isrf_csr_alloc(be->env, host->n_rows, host->n_cols, host->nnz, &d->m) != ISRF_OK)
	{
		isrf_free(be->env, d);
		return ISRF_ERR_NOMEM;
	}
	memcpy(d->m.rowptr, host->rowptr, sizeof(int32_t) * ((size_t) host->n_rows + 1));
	memcpy(d->m.col, host->col, sizeof(int32_t) * (size_t) host->nnz);
	memcpy(d->m.val, host->val, sizeof(float) * (size_t) host->nnz);
	*out = d;
	return ISRF_OK;
}

static void
cpu_csr_destroy(IsrfBackend *be, IsrfDevCsr *m)
{
	if (m == NULL)
		return;
	isrf_csr_free(be->env, &m->m);
	isrf_free(be->env, m);
}

static IsrfStatus
cpu_spmm(IsrfBackend *be, const IsrfDevCsr *s, int d, float alpha,
		 const float *x, float beta, float *y)
{
	if (d < 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID, "spmm: negative width");
	isrf_csr_spmm_ref(&s->m, d, alpha, x, beta, y);
	return ISRF_OK;
}

static IsrfStatus
cpu_axpby(IsrfBackend *be, size_t n, float alpha, const float *x, float beta,
		  float *y)
{
	size_t		i;

	(void) be;
	if (beta == 0.0f)
		for (i = 0; i < n; i++)
			y[i] = alpha * x[i];
	else
		for (i = 0; i < n; i++)
			y[i] = alpha * x[i] + beta * y[i];
	return ISRF_OK;
}

static IsrfStatus
cpu_row_normalize(IsrfBackend *be, int m, int d, float *x)
{
	int			r,
				j;

	if (m < 0 || d < 0)
		return isrf_fail(be->env, ISRF_ERR_INVALID,
						 "row_normalize: negative shape (m=%d, d=%d)", m, d);
	for (r = 0; r < m; r++)
	{
		float	   *row = x + (size_t) r * d;
		double		ss = 0.0;

		for (j = 0; j < d; j++)
			ss += (double) row[j] * row[j];
		if (ss > 0.0)
		{
			float		inv = (float) (1.0 / sqrt(ss));

			for (j = 0; j < d; j++)
				row[j] *= inv;
		}
	}
	return ISRF_OK;
}

static IsrfStatus
cpu_topk_rows(IsrfBackend *be, int m, int n, const float *x, int ld, int k,
			  bool exclude_diag, int64_t diag_offset, int32_t *idx, float *val)
{
	if (m < 0 || n < 0 || k < 0 || ld < n)
		return isrf_fail(be->env, ISRF_ERR_INVALID, "topk_rows: bad shape");
	isrf_topk_rows_ref(m, n, x, ld, k, exclude_diag, diag_offset, idx, val);
	return ISRF_OK;
}

static void
cpu_destroy(IsrfBackend *be)
{
	CpuImpl    *impl = be->impl;
	IsrfEnv    *env = be->env;

	while (impl->head.next != &impl->head)
		cpu_mem_free(be, impl->head.next + 1);
	isrf_free(env, impl);
	isrf_free(env, be);
}

/*
 * BLAS threads.  Small products run faster on one thread, and a database
 * with many sessions should not multiply threads by sessions.
 */
void
isrf_cpu_set_threads(int n)
{
	if (cpu_set_threads && n > 0)
	{
		sigset_t	all,
					old;

		/* OpenBLAS may start threads here: keep PostgreSQL's signals away */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		cpu_set_threads(n);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
}

IsrfStatus
isrf_cpu_backend_create(IsrfEnv *env, IsrfBackend **out)
{
	IsrfBackend *be;
	CpuImpl    *impl;

	if (!cpu_blas_probed)
	{
		const char *threads = getenv("ISRF_BLAS_THREADS");

		isrf_with_signals_blocked(cpu_load_blas_blocked, NULL);
		cpu_blas_probed = true;
		if (threads && cpu_set_threads && atoi(threads) > 0)
			isrf_cpu_set_threads(atoi(threads));
	}
	be = isrf_calloc(env, 1, sizeof(IsrfBackend));
	impl = be ? isrf_calloc(env, 1, sizeof(CpuImpl)) : NULL;
	if (impl == NULL)
	{
		isrf_free(env, be);
		return ISRF_ERR_NOMEM;
	}
	impl->head.next = impl->head.prev = &impl->head;
	be->abi = ISRF_BACKEND_ABI;
	be->name = "cpu";
	be->env = env;
	be->impl = impl;
	be->destroy = cpu_destroy;
	be->describe = cpu_describe;
	be->mem_alloc = cpu_mem_alloc;
	be->mem_free = cpu_mem_free;
	be->upload = cpu_copy;
	be->download = cpu_copy;
	be->copy = cpu_copy;
	be->sync = cpu_sync;
	be->gemm = cpu_gemm;
	be->csr_create = cpu_csr_create;
	be->csr_destroy = cpu_csr_destroy;
	be->spmm = cpu_spmm;
	be->axpby = cpu_axpby;
	be->row_normalize = cpu_row_normalize;
	be->topk_rows = cpu_topk_rows;
	isrf_cpu_nn_install(be);
	*out = be;
	return ISRF_OK;
}
