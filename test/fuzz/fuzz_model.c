/*
 * test/fuzz/fuzz_model.c
 *	  libFuzzer harness: any bytes as a stored model.  isrf_model_load must
 *	  refuse what is not a whole, checksummed, consistent model, and a model
 *	  it accepts must be served (fuzz_serve) without reading out of bounds.
 *	  Seeds: test/fuzz/corpus/model (small valid models).
 */
#include "fuzz.h"

#include "model/model_file.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	IsrfModel	m;

	if (isrf_model_load(fuzz_env(), data, size, &m) != ISRF_OK)
		return 0;
	fuzz_serve(&m, isrf_crc32c(0, data, size < 256 ? size : 256));
	isrf_model_free(fuzz_env(), &m);
	return 0;
}
