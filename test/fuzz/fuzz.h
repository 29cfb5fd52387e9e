/*
 * test/fuzz/fuzz.h
 *	  What the libFuzzer harnesses of test/fuzz share (support.c): an
 *	  environment on malloc, the CPU backend, small valid models to start
 *	  from, and serving a loaded model as the model server and isrf_rank do,
 *	  aborting on an answer that would make them read out of bounds.
 *	  Built by `make fuzz` with -fsanitize=fuzzer,address,undefined.
 */
#ifndef ISRF_FUZZ_H
#define ISRF_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "compute/backend.h"
#include "model/model.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int			LLVMFuzzerInitialize(int *argc, char ***argv);

/* One environment per process (the harnesses are single-threaded). */
IsrfEnv    *fuzz_env(void);

/* The CPU backend, one BLAS thread; opened on first use. */
IsrfBackend *fuzz_backend(void);

/*
 * A small valid serialized model: which 0 has a generative part, 1 has
 * none.  Trained on first use (a few seconds under the sanitizers), then
 * kept; *buf is the harness's, not to be freed.
 */
void		fuzz_seed_model(int which, const uint8_t **buf, size_t *len);

/*
 * Serve a model that loaded: recommendations for known, unknown and
 * chosen users with small and large k and beam widths, candidate ranking
 * with unknown items and a given history.  A refusal (an error status) is
 * fine; an answer with an item out of the catalogue or more items than
 * asked for aborts.  knobs picks users, widths and candidates.
 */
void		fuzz_serve(const IsrfModel *m, uint32_t knobs);

/*
 * With ISRF_FUZZ_WRITE_SEEDS=DIR, write the seed models there and exit
 * (LLVMFuzzerInitialize of every harness calls it).
 */
void		fuzz_maybe_write_seeds(void);

#endif							/* ISRF_FUZZ_H */
