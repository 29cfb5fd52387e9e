/*
 * unit.h
 *	  A minimal harness for the C unit tests of src/core: each check counts as
 *	  one test, failures print where they happened, and UNIT_END prints the
 *	  "N passed, N failed" line that test/run_tests.sh adds up.
 */
#ifndef ISRF_UNIT_H
#define ISRF_UNIT_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int	unit_passed = 0;
static int	unit_failed = 0;

#define CHECK(cond) \
	do { \
		if (cond) \
			unit_passed++; \
		else \
		{ \
			unit_failed++; \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		} \
	} while (0)

#define CHECK_MSG(cond, ...) \
	do { \
		if (cond) \
			unit_passed++; \
		else \
		{ \
			unit_failed++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

#define CHECK_NEAR(a, b, tol) \
	CHECK_MSG(fabs((double) (a) - (double) (b)) <= (tol), "%g vs %g (tol %g)", \
			  (double) (a), (double) (b), (double) (tol))

/* Largest absolute difference between two float arrays. */
static inline double
unit_max_abs_diff(const float *a, const float *b, size_t n)
{
	double		worst = 0.0;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - (double) b[i]);

		if (d > worst || d != d)
			worst = d;
	}
	return worst;
}

/* Deterministic pseudo-random numbers for test data (splitmix64). */
static inline unsigned long long
unit_rand_next(unsigned long long *state)
{
	unsigned long long z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static inline float
unit_rand_uniform(unsigned long long *state)
{
	return (float) ((unit_rand_next(state) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

#define UNIT_END(name) \
	do { \
		printf("%s: %d passed, %d failed\n", (name), unit_passed, unit_failed); \
		return unit_failed == 0 ? 0 : 1; \
	} while (0)

#endif							/* ISRF_UNIT_H */
