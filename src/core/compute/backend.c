/*
 * compute/backend.c
 *	  Choosing and opening a compute backend, loading the CUDA library on
 *	  demand, and the row-wise top-k reference shared by every backend.
 */
#include "compute/backend.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

bool
isrf_device_pref_parse(const char *s, IsrfDevicePref *out)
{
	if (s == NULL)
		return false;
	if (strcmp(s, "auto") == 0)
		*out = ISRF_DEVICE_AUTO;
	else if (strcmp(s, "cpu") == 0)
		*out = ISRF_DEVICE_CPU;
	else if (strcmp(s, "cuda") == 0)
		*out = ISRF_DEVICE_CUDA;
	else
		return false;
	return true;
}

IsrfStatus
isrf_with_signals_blocked(IsrfStatus (*fn) (void *arg), void *arg)
{
	sigset_t	all,
				old;
	IsrfStatus	st;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	st = fn(arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return st;
}

typedef struct CudaOpenArgs
{
	IsrfEnv    *env;
	const char *library;
	IsrfBackend *result;
} CudaOpenArgs;

/* Runs with signals blocked: dlopen and device set-up may start threads. */
static IsrfStatus
backend_open_cuda_blocked(void *arg)
{
	CudaOpenArgs *a = arg;
	void	   *handle;
	IsrfCudaEntry entry;

	handle = dlopen(a->library, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL)
	{
		const char *why = dlerror();

		return isrf_fail(a->env, ISRF_ERR_UNAVAILABLE,
						 "could not load the CUDA backend \"%s\": %s",
						 a->library, why ? why : "unknown error");
	}
	entry = (IsrfCudaEntry) dlsym(handle, ISRF_CUDA_ENTRY);
	if (entry == NULL)
		return isrf_fail(a->env, ISRF_ERR_UNAVAILABLE,
						 "CUDA backend \"%s\" has no symbol %s",
						 a->library, ISRF_CUDA_ENTRY);

	/*
	 * The library stays loaded for the life of the process: unloading CUDA
	 * runtimes is not supported reliably, and a second open reuses it.
	 */
	return entry(a->env, ISRF_BACKEND_ABI, &a->result);
}

IsrfStatus
isrf_backend_open(IsrfEnv *env, IsrfDevicePref pref, const char *cuda_library,
				  IsrfBackend **out)
{
	*out = NULL;
	if (pref != ISRF_DEVICE_CPU)
	{
		CudaOpenArgs args = {env, cuda_library, NULL};
		IsrfStatus	st;

		if (cuda_library == NULL)
			st = isrf_fail(env, ISRF_ERR_UNAVAILABLE, "no CUDA backend library was built");
		else
			st = isrf_with_signals_blocked(backend_open_cuda_blocked, &args);
		if (st == ISRF_OK)
		{
			*out = args.result;
			return ISRF_OK;
		}
		if (pref == ISRF_DEVICE_CUDA || st == ISRF_ERR_CANCELLED)
			return st;
		isrf_log(env, "isrf.device=auto: using the CPU (%s)", env->errmsg);
		env->status = ISRF_OK;
		env->errmsg[0] = '\0';
	}
	return isrf_cpu_backend_create(env, out);
}

void
isrf_backend_close(IsrfBackend *b)
{
	if (b)
		b->destroy(b);
}

/* a is a better candidate than b: larger value, or equal and lower column */
static inline bool
topk_better(float va, int32_t ia, float vb, int32_t ib)
{
	return va > vb || (va == vb && ia < ib);
}

/* Restore the min-heap (worst candidate at the root) below position i. */
static void
topk_sift_down(float *v, int32_t *ix, int n, int i)
{
	for (;;)
	{
		int			l = 2 * i + 1,
					r = l + 1,
					w = i;

		if (l < n && topk_better(v[w], ix[w], v[l], ix[l]))
			w = l;
		if (r < n && topk_better(v[w], ix[w], v[r], ix[r]))
			w = r;
		if (w == i)
			return;
		{
			float		tv = v[i];
			int32_t		ti = ix[i];

			v[i] = v[w];
			ix[i] = ix[w];
			v[w] = tv;
			ix[w] = ti;
		}
		i = w;
	}
}

void
isrf_topk_rows_ref(int m, int n, const float *x, int ld, int k,
				   bool exclude_diag, int64_t diag_offset,
				   int32_t *idx, float *val)
{
	int			r;

	for (r = 0; r < m; r++)
	{
		const float *row = x + (size_t) r * ld;
		float	   *v = val + (size_t) r * k;
		int32_t    *ix = idx + (size_t) r * k;
		int			have = 0;
		int			c,
					i;

		for (c = 0; c < n; c++)
		{
			float		xv = row[c];

			if (isnan(xv))
				continue;
			if (exclude_diag && (int64_t) c == (int64_t) r + diag_offset)
				continue;
			if (have < k)
			{
				/* sift up */
				int			j = have++;

				v[j] = xv;
				ix[j] = c;
				while (j > 0)
				{
					int			p = (j - 1) / 2;

					if (!topk_better(v[p], ix[p], v[j], ix[j]))
						break;
					{
						float		tv = v[p];
						int32_t		ti = ix[p];

						v[p] = v[j];
						ix[p] = ix[j];
						v[j] = tv;
						ix[j] = ti;
					}
					j = p;
				}
			}
			else if (k > 0 && topk_better(xv, c, v[0], ix[0]))
			{
				v[0] = xv;
				ix[0] = c;
				topk_sift_down(v, ix, k, 0);
			}
		}
		/* heap sort: repeatedly move the worst to the end */
		for (i = have - 1; i > 0; i--)
		{
			float		tv = v[0];
			int32_t		ti = ix[0];

			v[0] = v[i];
			ix[0] = ix[i];
			v[i] = tv;
			ix[i] = ti;
			topk_sift_down(v, ix, i, 0);
		}
		for (i = have; i < k; i++)
		{
			v[i] = -INFINITY;
			ix[i] = -1;
		}
	}
}
