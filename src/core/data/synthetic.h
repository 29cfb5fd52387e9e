/*
 * data/synthetic.h
 *	  A synthetic data set with planted user groups, for tests and the demo.
 *
 * Users belong to hidden groups; each group has its own items, vocabulary
 * and a favourite order in which its members consume those items, so both
 * the group graph (users of a group should be neighbours) and a sequential
 * model (the next item follows the group's order) have something real to
 * find.  Everything is a pure function of the parameters and the seed.
 */
#ifndef ISRF_SYNTH_H
#define ISRF_SYNTH_H

#include "base/env.h"

typedef struct IsrfSynthConfig
{
	int32_t		n_users;
	int32_t		n_items;
	int32_t		n_groups;
	int32_t		per_user;		/* mean history length */
	uint64_t	seed;
} IsrfSynthConfig;

typedef struct IsrfSynthData
{
	int64_t		n_rows;
	int64_t    *user_id;		/* 1-based external ids */
	int64_t    *item_id;
	int32_t    *position;		/* 1 = oldest, per user */
	int32_t    *user_group;		/* [n_users] planted group of user id u+1 */
	int32_t    *item_group;		/* [n_items] home group of item id i+1 */
} IsrfSynthData;

/* Validates the configuration (sizes, groups <= items) with clear messages. */
IsrfStatus	isrf_synth_check(IsrfEnv *env, const IsrfSynthConfig *cfg);

IsrfStatus	isrf_synth_generate(IsrfEnv *env, const IsrfSynthConfig *cfg,
								IsrfSynthData *out);

void		isrf_synth_free(IsrfEnv *env, IsrfSynthData *d);

/*
 * Text of the item with 0-based index i: field 0 title, 1 category,
 * 2 positive, 3 negative, 4 feature.  Written into buf (NUL-terminated).
 */
void		isrf_synth_item_text(const IsrfSynthConfig *cfg, const IsrfSynthData *d,
								 int32_t i, int field, char *buf, size_t len);

/* The LLM-style preference text of user index u. */
void		isrf_synth_user_text(const IsrfSynthConfig *cfg, const IsrfSynthData *d,
								 int32_t u, char *buf, size_t len);

#endif							/* ISRF_SYNTH_H */
