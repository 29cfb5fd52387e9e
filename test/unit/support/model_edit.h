/*
 * test/unit/support/model_edit.h
 *	  Small trained models and their sections, for the tests that hand the
 *	  model reader hostile models (test_hostile.c, the fuzzing harnesses of
 *	  test/fuzz): split a serialized model into its sections, edit them,
 *	  and write them again with fresh checksums, so that what is tested is
 *	  the reader's structural checks.  Test code only, on malloc.
 */
#ifndef ISRF_MODEL_EDIT_H
#define ISRF_MODEL_EDIT_H

#include "compute/backend.h"
#include "model/model.h"

#define ISRF_TEST_MAX_SECTIONS 64

/*
 * A small model trained on synthetic data (40 users, 16 items): with a
 * generative part or without one.  Deterministic.
 */
IsrfStatus	isrf_test_small_model(IsrfEnv *env, IsrfBackend *be, bool generative, IsrfModel *out);

typedef struct IsrfTestSection
{
	uint32_t	tag;
	uint32_t	type;			/* IsrfElemType, or anything */
	uint8_t    *data;			/* malloc'd, len bytes */
	size_t		len;
	bool		dropped;		/* left out when written again */
} IsrfTestSection;

typedef struct IsrfTestSections
{
	int			n;
	IsrfTestSection s[ISRF_TEST_MAX_SECTIONS];
} IsrfTestSections;

/* The sections of a valid serialized model, copied. */
IsrfStatus	isrf_test_sections_split(IsrfEnv *env, const uint8_t *buf, size_t len, IsrfTestSections *out);

/* The section with this tag, or NULL. */
IsrfTestSection *isrf_test_section(IsrfTestSections *s, uint32_t tag);

/* Resize a section (new bytes are zero). */
void		isrf_test_section_resize(IsrfTestSection *s, size_t len);

/*
 * Write the sections (those not dropped, in order) as a model with fresh
 * checksums; ISRF_ERR_INTERNAL when two share a tag.  *buf from env.
 */
IsrfStatus	isrf_test_sections_join(IsrfEnv *env, const IsrfTestSections *s, uint8_t **buf, size_t *len);

void		isrf_test_sections_free(IsrfTestSections *s);

#endif							/* ISRF_MODEL_EDIT_H */
