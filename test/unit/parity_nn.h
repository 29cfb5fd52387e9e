/*
 * parity_nn.h
 *	  What the GPU-vs-CPU parity tests of the neural-network operations
 *	  (test_parity_nn_*.c, one binary per family of operations) share: their
 *	  modes, random test data, the three runs of a case, the comparisons
 *	  that count as checks, the refusal of bad shapes, and the opening and
 *	  closing of the backend pair.
 *
 * Every operation of the backend table (ABI 2, see backend.h) runs on the
 * CPU backend (the reference) and on the CUDA backend with random data of
 * several shapes, awkward ones included.  Each case runs twice on the
 * device and must give bitwise the same result (the contract makes every
 * operation deterministic), negative sizes must be refused with
 * ISRF_ERR_INVALID on both backends, and the heavy operations are timed on
 * both (printed, never asserted).
 *
 * The CUDA library is $ISRF_CUDA_LIBRARY or ISRF_BUILD_DIR/isrf_cuda.so;
 * where it cannot be opened (no library, no driver, no device) a test
 * prints "<name>: SKIP: <reason>" and passes with nothing counted.  With
 * ISRF_PARITY_SELF=1 a second CPU backend stands in for the CUDA one, so
 * that the tests themselves run without a GPU; every comparison is then
 * bitwise.  ISRF_PARITY_VERBOSE=1 prints, per comparison, the largest
 * |device - cpu| / tolerance seen (to see how much room a kernel has).
 *
 * Tolerances (float32 data; the CPU backend is the reference, no double
 * reference is needed) are listed in each test's header.  u is float's
 * unit roundoff, 6e-8.  A "scale" is the sum of the absolute values of the
 * terms that make up a result, so a tolerance follows the size of the
 * computation, not that of a result that may cancel to zero.  A different
 * summation order (a tree on the device, ascending on the CPU) costs about
 * u sqrt(n) scale; the budgets are one to two orders above that, and far
 * below what a lost, doubled or misplaced term costs on the small shapes.
 * Padding columns and blocks that an operation must not touch are compared
 * bitwise; where the contract prescribes 0 both backends must give exactly
 * 0 (either sign).
 *
 * Define PARITY_NAME (the test's name) before including.
 */
#ifndef ISRF_PARITY_NN_H
#define ISRF_PARITY_NN_H

#include "parity.h"

#include <stdint.h>
#include <string.h>

static bool self_mode;			/* gpu is a second CPU backend */
static bool verbose;
static const char *gpu_label = "cuda";
static unsigned long long seed = 20260303ULL;

/* ---- helpers ---------------------------------------------------------- */

/* n uniform floats in (-scale, scale), none of them exactly zero. */
static inline float *
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

static inline unsigned char *
rand_bytes(size_t n)
{
	unsigned char *p = xmalloc(n);
	size_t		i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char) (unit_rand_next(&seed) >> 56);
	return p;
}

/* Uniform integer in [0, n), n > 0. */
static inline int
rand_below(int n)
{
	return (int) (unit_rand_next(&seed) % (unsigned long long) n);
}

/* The backend of run t: the reference first, then the one under test twice. */
static inline IsrfBackend *
runner(int t)
{
	return t == 0 ? cpu : gpu;
}

/* Sync after an operation that succeeded, so that a late failure shows. */
static inline IsrfStatus
finish(IsrfBackend *b, IsrfStatus st)
{
	return st == ISRF_OK ? b->sync(b) : st;
}

/* True when both backends have the operation; a missing one is a failure. */
static inline bool
need_op(bool on_cpu, bool on_gpu, const char *name)
{
	CHECK_MSG(on_cpu && on_gpu, "operation %s is missing on %s", name,
			  on_cpu ? gpu_label : "cpu");
	return on_cpu && on_gpu;
}

#define NEED(op) need_op(cpu->op != NULL, gpu->op != NULL, #op)

/* All three runs of a case returned ISRF_OK. */
static inline void
check_status(const char *what, const IsrfStatus st[3])
{
	CHECK_MSG(st[0] == ISRF_OK && st[1] == ISRF_OK && st[2] == ISRF_OK,
			  "%s: status cpu %d, %s %d and %d: %s", what, (int) st[0], gpu_label,
			  (int) st[1], (int) st[2], env.errmsg);
}

/* Two runs on the device under test gave bitwise the same bytes. */
static inline void
check_repeat(const char *what, const char *item, const void *g1, const void *g2,
			 size_t bytes)
{
	CHECK_MSG(bytes == 0 || memcmp(g1, g2, bytes) == 0,
			  "%s, %s: two %s runs differ", what, item, gpu_label);
}

/* got is bitwise ref; names say which sides they are. */
static inline void
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

static inline void
cmp_init(Cmp *c)
{
	memset(c, 0, sizeof(*c));
}

static inline void
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
static inline void
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
static inline void
cmp_exact(Cmp *c, size_t i, float ref, float got)
{
	c->n++;
	if (memcmp(&ref, &got, sizeof(float)) != 0)
		cmp_fail(c, i, ref, got, 0.0);
}

/* Both exactly zero (either sign; bitwise in self mode), as prescribed. */
static inline void
cmp_zero(Cmp *c, size_t i, float ref, float got)
{
	c->n++;
	if (self_mode ? memcmp(&ref, &got, sizeof(float)) != 0 : !(ref == 0.0f && got == 0.0f))
		cmp_fail(c, i, ref, got, 0.0);
}

/* One check for the comparison of the reference with the device. */
static inline void
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
static inline void
cmp_report_ref(const Cmp *c, const char *what, const char *item)
{
	CHECK_MSG(c->bad == 0, "%s, %s: the cpu reference breaks the contract at %zu of %zu "
			  "elements; first [%zu]: expected %.9g, cpu %.9g", what, item, c->bad, c->n,
			  c->first, c->ref, c->got);
}

static inline void
free3(void *p[3])
{
	free(p[0]);
	free(p[1]);
	free(p[2]);
}

/* ---- bad shapes --------------------------------------------------------- */

/* st is ISRF_ERR_INVALID with a message in env. */
static inline void
expect_invalid(IsrfBackend *b, IsrfStatus st, const char *call)
{
	CHECK_MSG(st == ISRF_ERR_INVALID && env.errmsg[0] != '\0',
			  "%s on %s: status %d (want ISRF_ERR_INVALID), message \"%s\"",
			  call, b == cpu ? "cpu" : gpu_label, (int) st, env.errmsg);
	env.errmsg[0] = '\0';
}

/*
 * Run refusals on both backends: it calls operations of b with bad shapes
 * (negative sizes, a short leading dimension) and expect_invalid on each;
 * f is backend memory of 256 floats for the pointer arguments.
 */
static inline void
parity_nn_refusals(void (*refusals) (IsrfBackend *b, float *f))
{
	int			t;

	for (t = 0; t < 2; t++)
	{
		IsrfBackend *b = runner(t);
		float	   *f = dev_alloc(b, sizeof(float) * 256);

		env.errmsg[0] = '\0';
		refusals(b, f);
		b->mem_free(b, f);
	}
}

/* ---- opening and closing ------------------------------------------------ */

/*
 * Read the modes, open the pair (false, after the SKIP and summary lines,
 * when there is no device) and check that both are the backends they claim
 * to be, printing what they are.
 */
static inline bool
parity_nn_open(void)
{
	const char *verb = getenv("ISRF_PARITY_VERBOSE");
	char		desc[512];

	self_mode = parity_self_mode();
	verbose = verb != NULL && verb[0] != '\0' && strcmp(verb, "0") != 0;
	if (!parity_open(self_mode))
		return false;
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
	return true;
}

/* Close the pair (the device's allocations go with it). */
static inline void
parity_nn_close(void)
{
	isrf_backend_close(gpu);
	isrf_backend_close(cpu);
}

#endif							/* ISRF_PARITY_NN_H */
