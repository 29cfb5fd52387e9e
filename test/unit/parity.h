/*
 * parity.h
 *	  What the GPU-vs-CPU parity tests (test_parity, test_parity_nn_*,
 *	  test_parity_model) share: the backend pair, host buffers, copies to and
 *	  from backend memory that stop the test on failure, and the opening of
 *	  the pair (the CUDA library, or a second CPU backend in self mode).
 *
 * Define PARITY_NAME (the test's name, for messages) before including.
 */
#ifndef ISRF_PARITY_H
#define ISRF_PARITY_H

#include "compute/backend.h"
#include "unit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#ifndef PARITY_NAME
#error "define PARITY_NAME before including parity.h"
#endif

#ifndef ISRF_BUILD_DIR
#define ISRF_BUILD_DIR "build"
#endif

static IsrfEnv env;
static IsrfBackend *cpu;		/* the reference */
static IsrfBackend *gpu;		/* the backend under test */

static inline void *
xmalloc(size_t bytes)
{
	void	   *p = malloc(bytes ? bytes : 1);

	if (p == NULL)
	{
		fprintf(stderr, PARITY_NAME ": out of host memory\n");
		exit(2);
	}
	return p;
}

static inline void *
dev_alloc(IsrfBackend *b, size_t bytes)
{
	void	   *d = NULL;

	if (b->mem_alloc(b, bytes, &d) != ISRF_OK)
	{
		fprintf(stderr, PARITY_NAME ": %s mem_alloc(%zu): %s\n", b->name, bytes, env.errmsg);
		exit(2);
	}
	return d;
}

static inline void
upload(IsrfBackend *b, void *dev, const void *host, size_t bytes)
{
	if (bytes && b->upload(b, dev, host, bytes) != ISRF_OK)
	{
		fprintf(stderr, PARITY_NAME ": %s upload: %s\n", b->name, env.errmsg);
		exit(2);
	}
}

/* Copy host bytes into new memory of backend b. */
static inline void *
to_backend(IsrfBackend *b, const void *host, size_t bytes)
{
	void	   *d = dev_alloc(b, bytes);

	upload(b, d, host, bytes);
	return d;
}

/* Download bytes of backend memory into a new host buffer. */
static inline void *
from_backend(IsrfBackend *b, const void *dev, size_t bytes)
{
	void	   *h = xmalloc(bytes);

	if (bytes && b->download(b, h, dev, bytes) != ISRF_OK)
	{
		fprintf(stderr, PARITY_NAME ": %s download: %s\n", b->name, env.errmsg);
		exit(2);
	}
	return h;
}

/* True when ISRF_PARITY_SELF asks for self mode (set, not empty, not "0"). */
static inline bool
parity_self_mode(void)
{
	const char *self = getenv("ISRF_PARITY_SELF");

	return self != NULL && self[0] != '\0' && strcmp(self, "0") != 0;
}

/* The CUDA library: $ISRF_CUDA_LIBRARY, else ISRF_BUILD_DIR/isrf_cuda.so. */
static inline const char *
parity_cuda_library(void)
{
	const char *lib = getenv("ISRF_CUDA_LIBRARY");

	return lib != NULL && lib[0] != '\0' ? lib : ISRF_BUILD_DIR "/isrf_cuda.so";
}

/*
 * Open cpu and gpu.  gpu is the CUDA library, or in self mode a second CPU
 * backend.  Returns false, after printing the SKIP and summary lines, when
 * there is no device; exits 2 when a CPU backend cannot be created.
 */
static inline bool
parity_open(bool self_mode)
{
	const char *lib = parity_cuda_library();

	isrf_env_init_malloc(&env);
	if (self_mode)
	{
		if (isrf_cpu_backend_create(&env, &gpu) != ISRF_OK)
		{
			fprintf(stderr, PARITY_NAME ": second CPU backend: %s\n", env.errmsg);
			exit(2);
		}
	}
	else if (isrf_backend_open(&env, ISRF_DEVICE_CUDA, lib, &gpu) != ISRF_OK)
	{
		printf(PARITY_NAME ": SKIP: %s\n", env.errmsg);
		printf(PARITY_NAME ": 0 passed, 0 failed\n");
		return false;
	}
	if (isrf_backend_open(&env, ISRF_DEVICE_CPU, NULL, &cpu) != ISRF_OK)
	{
		fprintf(stderr, PARITY_NAME ": CPU backend: %s\n", env.errmsg);
		exit(2);
	}
	return true;
}

#endif							/* ISRF_PARITY_H */
