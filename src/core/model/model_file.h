/*
 * model/model_file.h
 *	  The model file format: a versioned, checksummed container of named
 *	  sections, so that a corrupt or truncated model is reported as such and
 *	  never read past its end.
 *
 * Layout (little-endian):
 *	  header   "ISRFMODL", u32 format version, u32 section count,
 *			   u64 total length, u32 CRC-32C of these fields and the table
 *	  table    per section: u32 tag, u32 element type, u64 offset,
 *			   u64 length, u32 CRC-32C of the payload, u32 reserved
 *	  payload  sections, each 64-byte aligned
 */
#ifndef ISRF_MODEL_IO_H
#define ISRF_MODEL_IO_H

#include "base/env.h"

#define ISRF_MODEL_FORMAT_VERSION 3

/* Four-character section tags. */
#define ISRF_TAG(a, b, c, d) \
	((uint32_t) (a) | ((uint32_t) (b) << 8) | ((uint32_t) (c) << 16) | ((uint32_t) (d) << 24))

typedef enum IsrfElemType
{
	ISRF_ELEM_BYTES = 0,
	ISRF_ELEM_F32 = 1,
	ISRF_ELEM_I32 = 2,
	ISRF_ELEM_I64 = 3
} IsrfElemType;

typedef struct IsrfModelWriter IsrfModelWriter;

IsrfStatus	isrf_model_writer_begin(IsrfEnv *env, IsrfModelWriter **out);

/* Append a section; data is copied.  Tags must be unique. */
IsrfStatus	isrf_model_writer_add(IsrfModelWriter *w, uint32_t tag, IsrfElemType type,
								  const void *data, size_t bytes);

/* Produce the serialized model (allocated through env) and free the writer. */
IsrfStatus	isrf_model_writer_finish(IsrfModelWriter *w, uint8_t **buf, size_t *len);

void		isrf_model_writer_abort(IsrfModelWriter *w);

/* A validated view of a serialized model; points into the caller's buffer. */
typedef struct IsrfModelReader
{
	const uint8_t *buf;
	size_t		len;
	uint32_t	n_sections;
} IsrfModelReader;

/* Check magic, version, lengths and every checksum. */
IsrfStatus	isrf_model_reader_open(IsrfEnv *env, const uint8_t *buf, size_t len,
								   IsrfModelReader *r);

/*
 * Find a section of the given type; with expect_bytes != SIZE_MAX its
 * length must be exactly that.  Missing or mis-sized sections are
 * ISRF_ERR_CORRUPT, named by tag.
 */
IsrfStatus	isrf_model_reader_get(IsrfEnv *env, const IsrfModelReader *r, uint32_t tag,
								  IsrfElemType type, size_t expect_bytes,
								  const void **data, size_t *bytes);

/* true when the model has the section */
bool		isrf_model_reader_has(const IsrfModelReader *r, uint32_t tag);

/* CRC-32C (Castagnoli) of a buffer, continuing from crc (start with 0). */
uint32_t	isrf_crc32c(uint32_t crc, const void *data, size_t len);

#endif							/* ISRF_MODEL_IO_H */
