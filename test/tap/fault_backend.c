/*
 * test/tap/fault_backend.c
 *	  A stand-in for the CUDA backend library (isrf.cuda_library) that
 *	  injects device errors, for test/tap/server_exit.t: it is the CPU
 *	  backend of the loaded isrf.so, except that its products fail with
 *	  ISRF_ERR_DEVICE in the process whose pid is written in the file
 *	  FAULT_PID_FILE (compiled in).  Test code only; never installed.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute/backend.h"

IsrfStatus	isrf_cuda_backend_create(IsrfEnv *env, int abi, IsrfBackend **out);

static IsrfBackend cpu_ops;		/* the CPU backend's operations */

/* Whether this process is the one told to fail. */
static bool
fault_here(void)
{
	char		buf[32];
	int			fd = open(FAULT_PID_FILE, O_RDONLY);
	ssize_t		n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return atol(buf) == (long) getpid();
}

static IsrfStatus
fault_gemm(IsrfBackend *b, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
		   const float *a, int lda, const float *bm, int ldb, float beta, float *c, int ldc)
{
	if (fault_here())
		return isrf_fail(b->env, ISRF_ERR_DEVICE, "injected device fault (test/tap/fault_backend.c)");
	return cpu_ops.gemm(b, trans_a, trans_b, m, n, k, alpha, a, lda, bm, ldb, beta, c, ldc);
}

static IsrfStatus
fault_topk_rows(IsrfBackend *b, int m, int n, const float *x, int ld, int k, bool exclude_diag,
				int64_t diag_offset, int32_t *idx, float *val)
{
	if (fault_here())
		return isrf_fail(b->env, ISRF_ERR_DEVICE, "injected device fault (test/tap/fault_backend.c)");
	return cpu_ops.topk_rows(b, m, n, x, ld, k, exclude_diag, diag_offset, idx, val);
}

static IsrfStatus
fault_describe(IsrfBackend *b, char *buf, size_t len)
{
	(void) b;
	strncpy(buf, "fault-injecting CPU backend (test)", len);
	buf[len - 1] = '\0';
	return ISRF_OK;
}

IsrfStatus
isrf_cuda_backend_create(IsrfEnv *env, int abi, IsrfBackend **out)
{
	IsrfStatus	st;

	if (abi != ISRF_BACKEND_ABI)
		return isrf_fail(env, ISRF_ERR_UNAVAILABLE, "fault backend: ABI %d, built for %d",
						 abi, ISRF_BACKEND_ABI);
	st = isrf_cpu_backend_create(env, out);
	if (st != ISRF_OK)
		return st;
	cpu_ops = **out;
	(*out)->gemm = fault_gemm;
	(*out)->topk_rows = fault_topk_rows;
	(*out)->describe = fault_describe;
	return ISRF_OK;
}
