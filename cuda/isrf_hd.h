/*
 * isrf_hd.h
 *	  Small inline helpers shared by the CUDA kernels and host C code: the
 *	  order-preserving key of a float used by the row-wise top-k, and the
 *	  candidate order of the top-k contract in backend.h.
 *
 * The header compiles as C11 (host only) and as CUDA C++, where every helper
 * is __host__ __device__, so the same definition of "better candidate" runs
 * on both sides and a host test can check it against plain float compares.
 */
#ifndef ISRF_HD_H
#define ISRF_HD_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define ISRF_HD __host__ __device__ __forceinline__
#else
#define ISRF_HD static inline
#endif

/*
 * Key of an invalid candidate (NaN, excluded diagonal, padding).  Every real
 * float maps to a key of at least 0x007FFFFF (the key of -INFINITY), so 0 is
 * below all of them.
 */
#define ISRF_HD_KEY_NONE 0u

/*
 * Monotone map from non-NaN floats to unsigned keys: a > b as floats exactly
 * when key(a) > key(b), and -0.0 gets the key of +0.0 because the contract
 * compares values with ==, under which they tie and the lower column wins.
 * NaN must be filtered by the caller.
 */
ISRF_HD uint32_t
isrf_hd_float_key(float v)
{
	uint32_t	bits;

	if (v == 0.0f)
		v = 0.0f;				/* folds -0.0 into +0.0 */
#ifdef __CUDA_ARCH__
	bits = __float_as_uint(v);
#else
	memcpy(&bits, &v, sizeof(bits));
#endif
	return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

/* Candidate a goes before b: larger key, or equal key and lower column. */
ISRF_HD bool
isrf_hd_topk_before(uint32_t ka, int32_t ca, uint32_t kb, int32_t cb)
{
	return ka > kb || (ka == kb && ca < cb);
}

/* Is column c of global row r (block offset diag_offset) a candidate? */
ISRF_HD bool
isrf_hd_topk_candidate(float v, int64_t c, int64_t r, bool exclude_diag,
					   int64_t diag_offset)
{
	if (v != v)
		return false;			/* NaN never wins */
	return !(exclude_diag && c == r + diag_offset);
}

#endif							/* ISRF_HD_H */
