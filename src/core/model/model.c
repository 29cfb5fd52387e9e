/*
 * model/model.c
 *	  Freeing, saving and loading IsrfModel (see model.h).
 */
#include "model/model.h"
#include "model/model_file.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_CONFIG	ISRF_TAG('C', 'O', 'N', 'F')
#define TAG_STATS	ISRF_TAG('S', 'T', 'A', 'T')
#define TAG_SIZES	ISRF_TAG('S', 'I', 'Z', 'E')
#define TAG_USERS	ISRF_TAG('U', 'I', 'D', 'S')
#define TAG_ITEMS	ISRF_TAG('I', 'I', 'D', 'S')
#define TAG_SEQPTR	ISRF_TAG('S', 'Q', 'P', 'T')
#define TAG_SEQ		ISRF_TAG('S', 'E', 'Q', ' ')
#define TAG_NTRAIN	ISRF_TAG('N', 'T', 'R', 'N')
#define TAG_IFEAT	ISRF_TAG('I', 'F', 'E', 'A')
#define TAG_UFEAT	ISRF_TAG('U', 'F', 'E', 'A')
#define TAG_USRC	ISRF_TAG('U', 'S', 'R', 'C')
#define TAG_GPTR	ISRF_TAG('G', 'P', 'T', 'R')
#define TAG_GCOL	ISRF_TAG('G', 'C', 'O', 'L')
#define TAG_GVAL	ISRF_TAG('G', 'V', 'A', 'L')
#define TAG_UEXP	ISRF_TAG('U', 'E', 'X', 'P')
#define TAG_IEXP	ISRF_TAG('I', 'E', 'X', 'P')
#define TAG_UGRP	ISRF_TAG('U', 'G', 'R', 'P')
#define TAG_GHDR	ISRF_TAG('G', 'H', 'D', 'R')
#define TAG_GCOD	ISRF_TAG('G', 'C', 'O', 'D')
#define TAG_GPAR	ISRF_TAG('G', 'P', 'A', 'R')
#define TAG_GTFP	ISRF_TAG('G', 'T', 'F', 'P')
#define TAG_GEVP	ISRF_TAG('G', 'E', 'V', 'P')	/* train-split weights, after a refit */
#define TAG_GEVT	ISRF_TAG('G', 'E', 'V', 'T')
#define TAG_GNET	ISRF_TAG('G', 'N', 'E', 'T')	/* the blend network of 8 inputs (before the
														 * relations': read, no longer written) */
#define TAG_GNE2	ISRF_TAG('G', 'N', 'E', '2')	/* the blend network, where kept */
#define TAG_GRRK	ISRF_TAG('G', 'R', 'R', 'K')	/* the rerank network, where kept */
#define TAG_TSIZ	ISRF_TAG('T', 'S', 'I', 'Z')	/* the items' TF-IDF rows: columns, entries */
#define TAG_TPTR	ISRF_TAG('T', 'P', 'T', 'R')
#define TAG_TCOL	ISRF_TAG('T', 'C', 'O', 'L')
#define TAG_TVAL	ISRF_TAG('T', 'V', 'A', 'L')

/*
 * The generative model's header, stored as "name=value" lines rather than
 * the struct's bytes, so that a build with another layout of IsrfGenrec
 * reads it (fields it does not know are ignored, fields it misses are 0).
 * Its configuration is the model's own (the CONF section).
 */
typedef struct ModelField
{
	const char *name;
	char		type;			/* i int32, z size_t, l int64, f float, d double */
	size_t		offset;
} ModelField;

#define GF(name, type, field) {name, type, offsetof(IsrfGenrec, field)}
static const ModelField model_genrec_fields[] = {
	GF("n_items", 'i', n_items), GF("dm", 'i', dm), GF("levels", 'i', levels),
	GF("codebook_size.0", 'i', codebook_sizes[0]), GF("codebook_size.1", 'i', codebook_sizes[1]),
	GF("codebook_size.2", 'i', codebook_sizes[2]), GF("codebook_size.3", 'i', codebook_sizes[3]),
	GF("codebook_size.4", 'i', codebook_sizes[4]), GF("codebook_size.5", 'i', codebook_sizes[5]),
	GF("codebook_size.6", 'i', codebook_sizes[6]), GF("codebook_size.7", 'i', codebook_sizes[7]),
	GF("scale.0", 'f', scale[0]), GF("scale.1", 'f', scale[1]), GF("scale.2", 'f', scale[2]),
	GF("scale.3", 'f', scale[3]),
	GF("weight.prior", 'f', weights.prior), GF("weight.prior_direct", 'f', weights.prior_direct),
	GF("weight.prior_knn", 'f', weights.prior_knn),
	GF("weight.prior_knn_direct", 'f', weights.prior_knn_direct),
	GF("weight.pop_direct", 'f', weights.pop_direct),
	GF("weight.recent_direct", 'f', weights.recent_direct),
	GF("weight.content_direct", 'f', weights.content_direct), GF("weight.beam", 'f', weights.beam),
	GF("weight.group", 'f', weights.group), GF("weight.group_direct", 'f', weights.group_direct),
	GF("weight.text", 'f', weights.text), GF("weight.text_direct", 'f', weights.text_direct),
	GF("n_words", 'i', n_words), GF("n_params", 'z', n_params), GF("n_tf_params", 'z', n_tf_params),
	GF("epochs_run", 'i', epochs_run), GF("best_epoch", 'i', best_epoch),
	GF("best_val_hr10", 'd', best_val_hr10), GF("best_val_ndcg10", 'd', best_val_ndcg10),
	GF("t_train", 'd', t_train), GF("nonfinite_steps", 'l', nonfinite_steps),
};
#undef GF
#define MODEL_N_GENREC_FIELDS ((int) (sizeof(model_genrec_fields) / sizeof(model_genrec_fields[0])))

/* The header's lines into buf (4096 bytes are plenty); the length. */
static size_t
model_genrec_text(const IsrfGenrec *g, char *buf, size_t len)
{
	size_t		off = 0;
	int			i;

	for (i = 0; i < MODEL_N_GENREC_FIELDS && off < len; i++)
	{
		const ModelField *f = &model_genrec_fields[i];
		const char *p = (const char *) g + f->offset;

		switch (f->type)
		{
			case 'i':
				off += snprintf(buf + off, len - off, "%s=%d\n", f->name, *(const int32_t *) p);
				break;
			case 'z':
				off += snprintf(buf + off, len - off, "%s=%zu\n", f->name, *(const size_t *) p);
				break;
			case 'l':
				off += snprintf(buf + off, len - off, "%s=%lld\n", f->name, (long long) *(const int64_t *) p);
				break;
			case 'f':
				off += snprintf(buf + off, len - off, "%s=%.9g\n", f->name, (double) *(const float *) p);
				break;
			default:
				off += snprintf(buf + off, len - off, "%s=%.17g\n", f->name, *(const double *) p);
				break;
		}
	}
	return off < len ? off : len;
}

/* Read the header's lines into g (zeroed first); damage is ISRF_ERR_CORRUPT. */
static IsrfStatus
model_genrec_parse(IsrfEnv *env, const char *text, size_t len, IsrfGenrec *g)
{
	size_t		p = 0;

	memset(g, 0, sizeof(*g));
	while (p < len)
	{
		char		line[128];
		size_t		n = 0;
		char	   *eq,
				   *end;
		int			i;

		while (p < len && text[p] != '\n' && n < sizeof(line) - 1)
			line[n++] = text[p++];
		line[n] = '\0';
		if (p < len && text[p] != '\n')
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative header is damaged");
		p++;
		if (n == 0)
			continue;
		if ((eq = strchr(line, '=')) == NULL)
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative header is damaged");
		*eq++ = '\0';
		for (i = 0; i < MODEL_N_GENREC_FIELDS; i++)
		{
			const ModelField *f = &model_genrec_fields[i];
			char	   *dst = (char *) g + f->offset;

			if (strcmp(f->name, line) != 0)
				continue;
			errno = 0;
			switch (f->type)
			{
				case 'i':
					{
						long		v = strtol(eq, &end, 10);

						if (v < INT32_MIN || v > INT32_MAX)
							errno = ERANGE;
						*(int32_t *) dst = (int32_t) v;
						break;
					}
				case 'z':
					*(size_t *) dst = (size_t) strtoull(eq, &end, 10);
					break;
				case 'l':
					*(int64_t *) dst = (int64_t) strtoll(eq, &end, 10);
					break;
				case 'f':
					*(float *) dst = strtof(eq, &end);
					break;
				default:
					*(double *) dst = strtod(eq, &end);
					break;
			}
			if (errno || end == eq || *end != '\0')
				return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative header is damaged (%s)", f->name);
		}
	}
	return ISRF_OK;
}

void
isrf_model_free(IsrfEnv *env, IsrfModel *m)
{
	isrf_free(env, m->user_ids);
	isrf_free(env, m->item_ids);
	isrf_free(env, m->seq_ptr);
	isrf_free(env, m->seq);
	isrf_free(env, m->n_train);
	isrf_free(env, m->item_feat);
	isrf_csr_free(env, &m->item_text);
	isrf_free(env, m->user_feat);
	isrf_free(env, m->user_source);
	isrf_csr_free(env, &m->group);
	isrf_free(env, m->user_explicit);
	isrf_free(env, m->item_explicit);
	isrf_free(env, m->user_group);
	isrf_genrec_free(env, &m->genrec);
	memset(m, 0, sizeof(*m));
}

IsrfStatus
isrf_model_save(IsrfEnv *env, const IsrfModel *m, uint8_t **buf, size_t *len)
{
	IsrfModelWriter *w;
	int32_t		sizes[4] = {m->n_users, m->n_items, m->dm, m->group.nnz};
	int32_t		tsizes[2] = {m->item_text.n_cols, m->item_text.nnz};
	size_t		nu = (size_t) m->n_users,
				ni = (size_t) m->n_items,
				dm = (size_t) m->dm;
	IsrfStatus	st;

	char		cfg_text[8192];
	size_t		cfg_len = isrf_train_config_text(&m->cfg, cfg_text, sizeof(cfg_text));

	if (cfg_len > sizeof(cfg_text))
		return isrf_fail(env, ISRF_ERR_INTERNAL, "the configuration does not fit its section");
	ISRF_TRY(isrf_model_writer_begin(env, &w));
	if ((st = isrf_model_writer_add(w, TAG_CONFIG, ISRF_ELEM_BYTES, cfg_text, cfg_len - 1)) ||
		(st = isrf_model_writer_add(w, TAG_STATS, ISRF_ELEM_BYTES, &m->stats, sizeof(m->stats))) ||
		(st = isrf_model_writer_add(w, TAG_SIZES, ISRF_ELEM_I32, sizes, sizeof(sizes))) ||
		(st = isrf_model_writer_add(w, TAG_USERS, ISRF_ELEM_I64, m->user_ids, nu * 8)) ||
		(st = isrf_model_writer_add(w, TAG_ITEMS, ISRF_ELEM_I64, m->item_ids, ni * 8)) ||
		(st = isrf_model_writer_add(w, TAG_SEQPTR, ISRF_ELEM_I32, m->seq_ptr, (nu + 1) * 4)) ||
		(st = isrf_model_writer_add(w, TAG_SEQ, ISRF_ELEM_I32, m->seq, (size_t) m->seq_ptr[nu] * 4)) ||
		(st = isrf_model_writer_add(w, TAG_NTRAIN, ISRF_ELEM_I32, m->n_train, nu * 4)) ||
		(st = isrf_model_writer_add(w, TAG_IFEAT, ISRF_ELEM_F32, m->item_feat, ni * dm * 4)) ||
		(st = isrf_model_writer_add(w, TAG_UFEAT, ISRF_ELEM_F32, m->user_feat, nu * dm * 4)) ||
		(st = isrf_model_writer_add(w, TAG_USRC, ISRF_ELEM_BYTES, m->user_source, nu)) ||
		(st = isrf_model_writer_add(w, TAG_GPTR, ISRF_ELEM_I32, m->group.rowptr, (nu + 1) * 4)) ||
		(st = isrf_model_writer_add(w, TAG_GCOL, ISRF_ELEM_I32, m->group.col, (size_t) m->group.nnz * 4)) ||
		(st = isrf_model_writer_add(w, TAG_GVAL, ISRF_ELEM_F32, m->group.val, (size_t) m->group.nnz * 4)) ||
		(st = isrf_model_writer_add(w, TAG_UEXP, ISRF_ELEM_F32, m->user_explicit, nu * dm * 4)) ||
		(st = isrf_model_writer_add(w, TAG_IEXP, ISRF_ELEM_F32, m->item_explicit, ni * dm * 4)) ||
		(st = isrf_model_writer_add(w, TAG_UGRP, ISRF_ELEM_F32, m->user_group, nu * dm * 4)) ||
		(m->item_text.rowptr != NULL &&
		 ((st = isrf_model_writer_add(w, TAG_TSIZ, ISRF_ELEM_I32, tsizes, sizeof(tsizes))) ||
		  (st = isrf_model_writer_add(w, TAG_TPTR, ISRF_ELEM_I32, m->item_text.rowptr, (ni + 1) * 4)) ||
		  (st = isrf_model_writer_add(w, TAG_TCOL, ISRF_ELEM_I32, m->item_text.col,
									  (size_t) m->item_text.nnz * 4)) ||
		  (st = isrf_model_writer_add(w, TAG_TVAL, ISRF_ELEM_F32, m->item_text.val,
									  (size_t) m->item_text.nnz * 4)))))
	{
		isrf_model_writer_abort(w);
		return st;
	}
	if (m->genrec.params != NULL)
	{
		char		hdr[4096];
		size_t		hdr_len = model_genrec_text(&m->genrec, hdr, sizeof(hdr));

		if ((st = isrf_model_writer_add(w, TAG_GHDR, ISRF_ELEM_BYTES, hdr, hdr_len)) ||
			(st = isrf_model_writer_add(w, TAG_GCOD, ISRF_ELEM_I32, m->genrec.codes,
										(size_t) m->genrec.n_items * m->genrec.levels * 4)) ||
			(st = isrf_model_writer_add(w, TAG_GPAR, ISRF_ELEM_F32, m->genrec.params,
										m->genrec.n_params * 4)) ||
			(st = isrf_model_writer_add(w, TAG_GTFP, ISRF_ELEM_F32, m->genrec.tf_params,
										m->genrec.n_tf_params * 4)) ||
			(m->genrec.eval_params &&
			 ((st = isrf_model_writer_add(w, TAG_GEVP, ISRF_ELEM_F32, m->genrec.eval_params,
										  m->genrec.n_params * 4)) ||
			  (st = isrf_model_writer_add(w, TAG_GEVT, ISRF_ELEM_F32, m->genrec.eval_tf_params,
										  m->genrec.n_tf_params * 4)))) ||
			(isrf_blend_net_active(&m->genrec.weights.net) &&
			 (st = isrf_model_writer_add(w, TAG_GNE2, ISRF_ELEM_F32, &m->genrec.weights.net,
										 sizeof(m->genrec.weights.net)))) ||
			(isrf_blend_net_active(&m->genrec.weights.rerank) &&
			 (st = isrf_model_writer_add(w, TAG_GRRK, ISRF_ELEM_F32, &m->genrec.weights.rerank,
										 sizeof(m->genrec.weights.rerank)))))
		{
			isrf_model_writer_abort(w);
			return st;
		}
	}
	return isrf_model_writer_finish(w, buf, len);
}

/* Copy a section of exactly bytes into a fresh allocation. */
static IsrfStatus
model_take(IsrfEnv *env, const IsrfModelReader *r, uint32_t tag, IsrfElemType type,
		   size_t bytes, void **out)
{
	const void *p;

	ISRF_TRY(isrf_model_reader_get(env, r, tag, type, bytes, &p, NULL));
	*out = isrf_alloc(env, bytes ? bytes : 1);
	if (*out == NULL)
		return ISRF_ERR_NOMEM;
	if (bytes)
		memcpy(*out, p, bytes);
	return ISRF_OK;
}

/* Structural checks a damaged-but-checksummed model could still fail. */
static IsrfStatus
model_check(IsrfEnv *env, const IsrfModel *m)
{
	int32_t		u,
				p;

	if (m->seq_ptr[0] != 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model histories are damaged");
	for (u = 0; u < m->n_users; u++)
	{
		if (m->seq_ptr[u + 1] < m->seq_ptr[u] || m->n_train[u] < 0 ||
			m->n_train[u] > m->seq_ptr[u + 1] - m->seq_ptr[u])
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model history of user %d is damaged", u);
		for (p = m->seq_ptr[u]; p < m->seq_ptr[u + 1]; p++)
			if (m->seq[p] < 0 || m->seq[p] >= m->n_items)
				return isrf_fail(env, ISRF_ERR_CORRUPT, "model history of user %d is damaged", u);
	}
	if (isrf_csr_validate(env, &m->group) != ISRF_OK)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model group graph is damaged: %s", env->errmsg);
	return ISRF_OK;
}

/* True when every float field of the header (the scales, the score's weights) is finite. */
static bool
model_genrec_floats_finite(const IsrfGenrec *g)
{
	int			i;

	for (i = 0; i < MODEL_N_GENREC_FIELDS; i++)
		if (model_genrec_fields[i].type == 'f' &&
			!isfinite(*(const float *) ((const char *) g + model_genrec_fields[i].offset)))
			return false;
	return true;
}

/* The generative model's sections, checked against the model's sizes. */
/* The columns of the item text that hold a word of some item (-1: no memory). */
static int32_t
model_text_words(IsrfEnv *env, const IsrfCsr *t)
{
	int32_t    *map = isrf_alloc(env, ((size_t) t->n_cols + 1) * 4);
	int32_t		n;

	if (map == NULL)
		return -1;
	n = isrf_csr_column_map(t, map);
	isrf_free(env, map);
	return n;
}

static IsrfStatus
model_load_genrec(IsrfEnv *env, const IsrfModelReader *r, IsrfModel *m)
{
	IsrfGenrec *g = &m->genrec;
	const void *p;
	size_t		nc,
				len;
	int32_t		j;

	ISRF_TRY(isrf_model_reader_get(env, r, TAG_GHDR, ISRF_ELEM_BYTES, SIZE_MAX, &p, &len));
	ISRF_TRY(model_genrec_parse(env, p, len, g));
	g->cfg = m->cfg.gen;
	if (g->n_items != m->n_items || g->dm != m->dm || g->levels < 0 || g->n_words < 0 ||
		!model_genrec_floats_finite(g) ||
		g->levels > ISRF_GENREC_MAX_LEVELS || isrf_genrec_config_check(env, &g->cfg) != ISRF_OK)
	{
		memset(g, 0, sizeof(*g));
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative header is damaged");
	}
	for (j = 0; j < g->levels; j++)
		if (g->codebook_sizes[j] < 1)
		{
			memset(g, 0, sizeof(*g));
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative header is damaged");
		}
	/* word embeddings are of the items' words: they need them (a vocabulary at most their columns) */
	if (g->n_words > 0 && (!g->cfg.use_word_emb || m->item_text.rowptr == NULL ||
						   g->n_words > m->item_text.n_cols ||
						   model_text_words(env, &m->item_text) != g->n_words))
	{
		memset(g, 0, sizeof(*g));
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model has word embeddings but not their item text");
	}
	if (g->n_params != isrf_genrec_param_count(&g->cfg, g->n_items, g->dm, g->levels, g->codebook_sizes,
											   g->n_words))
	{
		memset(g, 0, sizeof(*g));
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model generative weights have the wrong size");
	}
	nc = (size_t) g->n_items * g->levels;
	if (model_take(env, r, TAG_GCOD, ISRF_ELEM_I32, nc * 4, (void **) &g->codes) ||
		model_take(env, r, TAG_GPAR, ISRF_ELEM_F32, g->n_params * 4, (void **) &g->params) ||
		model_take(env, r, TAG_GTFP, ISRF_ELEM_F32, g->n_tf_params * 4, (void **) &g->tf_params))
		return env->status;
	/* a refit model carries its train-split weights too, both or neither */
	if (isrf_model_reader_has(r, TAG_GEVP) != isrf_model_reader_has(r, TAG_GEVT))
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model train-split weights are incomplete");
	if (isrf_model_reader_has(r, TAG_GEVP) &&
		(model_take(env, r, TAG_GEVP, ISRF_ELEM_F32, g->n_params * 4, (void **) &g->eval_params) ||
		 model_take(env, r, TAG_GEVT, ISRF_ELEM_F32, g->n_tf_params * 4, (void **) &g->eval_tf_params)))
		return env->status;
	for (j = 0; (size_t) j < nc; j++)
		if (g->codes[j] < 0 || g->codes[j] >= g->codebook_sizes[j % g->levels])
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model semantic IDs are damaged");
	/* the blend network: absent in a model without it (all zero adds nothing) */
	if (isrf_model_reader_has(r, TAG_GNE2))
	{
		ISRF_TRY(isrf_model_reader_get(env, r, TAG_GNE2, ISRF_ELEM_F32, sizeof(g->weights.net), &p, NULL));
		memcpy(&g->weights.net, p, sizeof(g->weights.net));
	}
	else if (isrf_model_reader_has(r, TAG_GNET))
	{
		ISRF_TRY(isrf_model_reader_get(env, r, TAG_GNET, ISRF_ELEM_F32,
									   ISRF_BLEND_NET_FLOATS_V1 * sizeof(float), &p, NULL));
		isrf_blend_net_from_v1(p, &g->weights.net);
	}
	if ((isrf_model_reader_has(r, TAG_GNE2) || isrf_model_reader_has(r, TAG_GNET)) &&
		(!isrf_blend_net_finite(&g->weights.net) || !isrf_blend_net_active(&g->weights.net)))
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model blend network is damaged");
	/* the rerank network: likewise */
	if (isrf_model_reader_has(r, TAG_GRRK))
	{
		ISRF_TRY(isrf_model_reader_get(env, r, TAG_GRRK, ISRF_ELEM_F32, sizeof(g->weights.rerank), &p, NULL));
		memcpy(&g->weights.rerank, p, sizeof(g->weights.rerank));
		if (!isrf_blend_net_finite(&g->weights.rerank) || !isrf_blend_net_active(&g->weights.rerank))
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model rerank network is damaged");
	}
	return ISRF_OK;
}

void
isrf_model_genrec_data(const IsrfModel *m, IsrfGenrecData *d)
{
	memset(d, 0, sizeof(*d));
	d->n_users = m->n_users;
	d->n_items = m->n_items;
	d->dm = m->dm;
	d->seq_ptr = m->seq_ptr;
	d->seq = m->seq;
	d->n_train = m->n_train;
	d->item_feat = m->item_feat;
	d->item_text = m->item_text.rowptr ? &m->item_text : NULL;
	d->item_explicit = m->item_explicit;
	d->user_explicit = m->user_explicit;
	d->user_group = m->user_group;
	d->user_feat = m->cfg.use_group ? m->user_feat : NULL;
	d->group_k = m->cfg.group_k;
	d->group = &m->group;
}

/*
 * The items' TF-IDF rows (optional sections: models trained from
 * embeddings, or before them, have none): sizes, row pointers, columns in
 * range, finite values.
 */
static IsrfStatus
model_load_item_text(IsrfEnv *env, const IsrfModelReader *r, IsrfModel *out)
{
	IsrfCsr    *t = &out->item_text;
	const int32_t *sizes;
	const void *p;
	int32_t		i;

	ISRF_TRY(isrf_model_reader_get(env, r, TAG_TSIZ, ISRF_ELEM_I32, 2 * sizeof(int32_t), &p, NULL));
	sizes = p;
	/* the featurizer's hashed vocabulary is at most 1 << 24 (train/config.c) */
	if (sizes[0] < 1 || sizes[0] > (1 << 24) || sizes[1] < 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model item text is damaged");
	t->n_rows = out->n_items;
	t->n_cols = sizes[0];
	t->nnz = sizes[1];
	ISRF_TRY(model_take(env, r, TAG_TPTR, ISRF_ELEM_I32, ((size_t) out->n_items + 1) * 4, (void **) &t->rowptr));
	ISRF_TRY(model_take(env, r, TAG_TCOL, ISRF_ELEM_I32, (size_t) t->nnz * 4, (void **) &t->col));
	ISRF_TRY(model_take(env, r, TAG_TVAL, ISRF_ELEM_F32, (size_t) t->nnz * 4, (void **) &t->val));
	if (isrf_csr_validate(env, t) != ISRF_OK)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model item text is damaged: %s", env->errmsg);
	/* each row is of unit length: no weight is more than 1 (nor infinite, nor NaN) */
	for (i = 0; i < t->nnz; i++)
		if (!(fabsf(t->val[i]) <= 1.001f))
			return isrf_fail(env, ISRF_ERR_CORRUPT, "model item text is damaged (a weight of %g)",
							 (double) t->val[i]);
	return ISRF_OK;
}

IsrfStatus
isrf_model_load(IsrfEnv *env, const uint8_t *buf, size_t len, IsrfModel *out)
{
	IsrfModelReader r;
	const int32_t *sizes;
	const void *p;
	IsrfStatus	st;
	size_t		nu,
				ni,
				dm,
				nseq;

	memset(out, 0, sizeof(*out));
	ISRF_TRY(isrf_model_reader_open(env, buf, len, &r));
	ISRF_TRY(isrf_model_reader_get(env, &r, TAG_SIZES, ISRF_ELEM_I32, 4 * sizeof(int32_t), &p, NULL));
	sizes = p;
	if (sizes[0] < 0 || sizes[1] < 0 || sizes[2] < 1 || sizes[3] < 0)
		return isrf_fail(env, ISRF_ERR_CORRUPT, "model sizes are damaged");
	out->n_users = sizes[0];
	out->n_items = sizes[1];
	out->dm = sizes[2];
	nu = (size_t) sizes[0];
	ni = (size_t) sizes[1];
	dm = (size_t) sizes[2];
	out->group.n_rows = out->group.n_cols = sizes[0];
	out->group.nnz = sizes[3];

	{
		size_t		cfg_len;

		if ((st = isrf_model_reader_get(env, &r, TAG_CONFIG, ISRF_ELEM_BYTES, SIZE_MAX, &p, &cfg_len)) != ISRF_OK ||
			(st = isrf_train_config_from_text(env, p, cfg_len, &out->cfg)) != ISRF_OK)
			goto fail;
	}
	if ((st = isrf_model_reader_get(env, &r, TAG_STATS, ISRF_ELEM_BYTES, sizeof(out->stats), &p, NULL)) != ISRF_OK)
		goto fail;
	memcpy(&out->stats, p, sizeof(out->stats));
	if ((st = model_take(env, &r, TAG_SEQPTR, ISRF_ELEM_I32, (nu + 1) * 4, (void **) &out->seq_ptr)) != ISRF_OK)
		goto fail;
	nseq = out->seq_ptr[nu] < 0 ? 0 : (size_t) out->seq_ptr[nu];
	if ((st = model_take(env, &r, TAG_USERS, ISRF_ELEM_I64, nu * 8, (void **) &out->user_ids)) ||
		(st = model_take(env, &r, TAG_ITEMS, ISRF_ELEM_I64, ni * 8, (void **) &out->item_ids)) ||
		(st = model_take(env, &r, TAG_SEQ, ISRF_ELEM_I32, nseq * 4, (void **) &out->seq)) ||
		(st = model_take(env, &r, TAG_NTRAIN, ISRF_ELEM_I32, nu * 4, (void **) &out->n_train)) ||
		(st = model_take(env, &r, TAG_IFEAT, ISRF_ELEM_F32, ni * dm * 4, (void **) &out->item_feat)) ||
		(st = model_take(env, &r, TAG_UFEAT, ISRF_ELEM_F32, nu * dm * 4, (void **) &out->user_feat)) ||
		(st = model_take(env, &r, TAG_GPTR, ISRF_ELEM_I32, (nu + 1) * 4, (void **) &out->group.rowptr)) ||
		(st = model_take(env, &r, TAG_GCOL, ISRF_ELEM_I32, (size_t) sizes[3] * 4, (void **) &out->group.col)) ||
		(st = model_take(env, &r, TAG_GVAL, ISRF_ELEM_F32, (size_t) sizes[3] * 4, (void **) &out->group.val)) ||
		(st = model_take(env, &r, TAG_UEXP, ISRF_ELEM_F32, nu * dm * 4, (void **) &out->user_explicit)) ||
		(st = model_take(env, &r, TAG_IEXP, ISRF_ELEM_F32, ni * dm * 4, (void **) &out->item_explicit)) ||
		(st = model_take(env, &r, TAG_UGRP, ISRF_ELEM_F32, nu * dm * 4, (void **) &out->user_group)) ||
		(st = model_check(env, out)))
		goto fail;
	/* where each user's feature came from (models before it had it: history) */
	if (isrf_model_reader_has(&r, TAG_USRC))
	{
		if ((st = model_take(env, &r, TAG_USRC, ISRF_ELEM_BYTES, nu, (void **) &out->user_source)) != ISRF_OK)
			goto fail;
	}
	else if ((out->user_source = isrf_alloc(env, nu + 1)) == NULL)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	else
		memset(out->user_source, 2, nu);	/* ISRF_USER_FEATURE_HISTORY */
	if (isrf_model_reader_has(&r, TAG_TSIZ) &&
		(st = model_load_item_text(env, &r, out)) != ISRF_OK)
		goto fail;
	if (isrf_model_reader_has(&r, TAG_GHDR) &&
		(st = model_load_genrec(env, &r, out)) != ISRF_OK)
		goto fail;
	return ISRF_OK;

fail:
	isrf_model_free(env, out);
	return st;
}

int32_t
isrf_model_user_index(const IsrfModel *m, int64_t user_id)
{
	return isrf_id_index(m->user_ids, m->n_users, user_id);
}

int32_t
isrf_model_item_index(const IsrfModel *m, int64_t item_id)
{
	return isrf_id_index(m->item_ids, m->n_items, item_id);
}

void
isrf_model_stats_json(const IsrfModel *m, char *buf, size_t len)
{
	const IsrfModelStats *s = &m->stats;

	snprintf(buf, len,
			 "{\"users\": %d, \"items\": %d, \"interactions\": %lld, \"train_interactions\": %lld,"
			 " \"evaluated_users\": %d, \"items_with_text\": %d, \"users_with_description\": %d,"
			 " \"users_from_history\": %d, \"users_without_feature\": %d, \"group_edges\": %lld,"
			 " \"mean_neighbour_similarity\": %.4f, \"explained_variance\": %.4f,"
			 " \"seconds\": {\"split\": %.3f, \"features\": %.3f, \"group_graph\": %.3f, \"lightgcn\": %.3f, \"train\": %.3f},"
			 " \"epochs\": %d, \"best_epoch\": %d, \"val_hr10\": %.4f, \"val_ndcg10\": %.4f,"
			 " \"nonfinite_steps\": %lld, \"words\": %d, \"score_weights\": {\"prior\": %g, \"prior_direct\": %g,"
			 " \"pop_direct\": %g, \"recent_direct\": %g, \"content_direct\": %g, \"beam\": %g, \"prior_knn\": %g, \"prior_knn_direct\": %g,"
			 " \"group\": %g, \"group_direct\": %g, \"text\": %g, \"text_direct\": %g, \"blend_net\": %s, \"rerank_net\": %s}}",
			 s->n_users, s->n_items, (long long) s->n_interactions, (long long) s->n_train_interactions,
			 s->n_evaluated_users, s->n_items_with_text, s->n_users_with_description,
			 s->n_users_from_history, s->n_users_without_feature, (long long) s->n_group_edges,
			 s->mean_neighbour_similarity, s->explained_variance,
			 s->t_split, s->t_features, s->t_group_graph, s->t_lightgcn, s->t_train,
			 m->genrec.epochs_run, m->genrec.best_epoch, m->genrec.best_val_hr10,
			 m->genrec.best_val_ndcg10, (long long) m->genrec.nonfinite_steps, m->genrec.n_words,
			 (double) m->genrec.weights.prior, (double) m->genrec.weights.prior_direct,
			 (double) m->genrec.weights.pop_direct, (double) m->genrec.weights.recent_direct,
			 (double) m->genrec.weights.content_direct, (double) m->genrec.weights.beam, (double) m->genrec.weights.prior_knn,
			 (double) m->genrec.weights.prior_knn_direct, (double) m->genrec.weights.group,
			 (double) m->genrec.weights.group_direct, (double) m->genrec.weights.text,
			 (double) m->genrec.weights.text_direct,
			 isrf_blend_net_active(&m->genrec.weights.net) ? "true" : "false",
			 isrf_blend_net_active(&m->genrec.weights.rerank) ? "true" : "false");
}
