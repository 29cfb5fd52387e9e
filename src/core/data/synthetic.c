/*
 * data/synthetic.c
 *	  The synthetic data set generator (see synth.h).
 */
#include "data/synthetic.h"

#include <stdio.h>
#include <string.h>

/* Eight topic words per group, cycled with a group-number suffix past 12. */
static const char *const synth_topics[][8] = {
	{"hiking", "trail", "backpack", "tent", "compass", "summit", "canyon", "lantern"},
	{"jazz", "saxophone", "vinyl", "trumpet", "swing", "blues", "melody", "quartet"},
	{"baking", "flour", "oven", "pastry", "dough", "croissant", "yeast", "whisk"},
	{"skincare", "serum", "moisturizer", "retinol", "cleanser", "sunscreen", "toner", "hydrating"},
	{"chess", "opening", "gambit", "endgame", "bishop", "knight", "rook", "tactics"},
	{"gardening", "seeds", "compost", "tulip", "pruning", "greenhouse", "soil", "orchid"},
	{"cycling", "bicycle", "helmet", "pedal", "derailleur", "saddle", "sprint", "peloton"},
	{"astronomy", "telescope", "nebula", "galaxy", "comet", "orbit", "eclipse", "planetarium"},
	{"knitting", "yarn", "needles", "wool", "sweater", "stitch", "crochet", "pattern"},
	{"photography", "camera", "lens", "aperture", "tripod", "portrait", "exposure", "shutter"},
	{"coffee", "espresso", "grinder", "roast", "barista", "arabica", "latte", "brewing"},
	{"fishing", "lure", "reel", "angler", "trout", "tackle", "bait", "river"},
};
static const char *const synth_generic[] = {
	"classic", "premium", "deluxe", "compact", "original", "essential", "modern",
	"vintage", "everyday", "professional", "starter", "advanced", "travel", "home"
};

#define SYNTH_N_TOPICS ((int) (sizeof(synth_topics) / sizeof(synth_topics[0])))
#define SYNTH_N_GENERIC ((int) (sizeof(synth_generic) / sizeof(synth_generic[0])))

/* splitmix64 over (seed, stream, counter): stateless and reproducible */
static uint64_t
synth_hash(uint64_t seed, uint64_t stream, uint64_t n)
{
	uint64_t	z = seed * 0x9E3779B97F4A7C15ULL + stream * 0xD1B54A32D192ED03ULL + n;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
synth_unit(uint64_t seed, uint64_t stream, uint64_t n)
{
	return (double) (synth_hash(seed, stream, n) >> 11) * (1.0 / 9007199254740992.0);
}

IsrfStatus
isrf_synth_check(IsrfEnv *env, const IsrfSynthConfig *cfg)
{
	if (cfg->n_users < 1 || cfg->n_users > 10000000)
		return isrf_fail(env, ISRF_ERR_INVALID, "users must be between 1 and 10000000, not %d", cfg->n_users);
	if (cfg->n_items < 2 || cfg->n_items > 10000000)
		return isrf_fail(env, ISRF_ERR_INVALID, "items must be between 2 and 10000000, not %d", cfg->n_items);
	if (cfg->n_groups < 1 || cfg->n_groups > cfg->n_items)
		return isrf_fail(env, ISRF_ERR_INVALID, "groups must be between 1 and the number of items (%d), not %d",
						 cfg->n_items, cfg->n_groups);
	if (cfg->per_user < 1 || cfg->per_user > 1000)
		return isrf_fail(env, ISRF_ERR_INVALID, "per_user must be between 1 and 1000, not %d", cfg->per_user);
	if ((int64_t) cfg->n_users * cfg->per_user * 2 > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID, "users x per_user is too large (%lld)",
						 (long long) cfg->n_users * cfg->per_user);
	return ISRF_OK;
}

IsrfStatus
isrf_synth_generate(IsrfEnv *env, const IsrfSynthConfig *cfg, IsrfSynthData *out)
{
	int32_t		U = cfg->n_users,
				I = cfg->n_items,
				G = cfg->n_groups;
	int32_t    *group_start,
			   *group_items,
			   *group_fill;
	uint32_t   *seen_mark;
	int64_t		cap,
				n = 0;
	int32_t		u,
				i,
				g;
	uint64_t	s = cfg->seed;

	memset(out, 0, sizeof(*out));
	ISRF_TRY(isrf_synth_check(env, cfg));

	out->user_group = isrf_calloc(env, U, sizeof(int32_t));
	out->item_group = isrf_calloc(env, I, sizeof(int32_t));
	group_start = isrf_calloc(env, (size_t) G + 1, sizeof(int32_t));
	group_fill = isrf_calloc(env, G, sizeof(int32_t));
	group_items = isrf_calloc(env, I, sizeof(int32_t));
	seen_mark = isrf_calloc(env, I, sizeof(uint32_t));
	cap = (int64_t) U * (cfg->per_user + cfg->per_user / 2 + 1);
	out->user_id = isrf_calloc(env, cap, sizeof(int64_t));
	out->item_id = isrf_calloc(env, cap, sizeof(int64_t));
	out->position = isrf_calloc(env, cap, sizeof(int32_t));
	if (!out->user_group || !out->item_group || !group_start || !group_fill ||
		!group_items || !seen_mark || !out->user_id || !out->item_id || !out->position)
		goto nomem;

	/* every group gets at least one item: item i < G is group i's anchor */
	for (i = 0; i < I; i++)
		out->item_group[i] = (i < G) ? i : (int32_t) (synth_hash(s, 1, i) % (uint64_t) G);
	for (i = 0; i < I; i++)
		group_start[out->item_group[i] + 1]++;
	for (g = 0; g < G; g++)
		group_start[g + 1] += group_start[g];
	for (i = 0; i < I; i++)
		group_items[group_start[out->item_group[i]] + group_fill[out->item_group[i]]++] = i;
	for (u = 0; u < U; u++)
		out->user_group[u] = (int32_t) (synth_hash(s, 2, u) % (uint64_t) G);

	for (u = 0; u < U; u++)
	{
		int32_t		gu = out->user_group[u];
		int32_t		gsize = group_start[gu + 1] - group_start[gu];
		int32_t		len = cfg->per_user / 2 + (int32_t) (synth_hash(s, 3, u) % (uint64_t) (cfg->per_user + 1));
		int32_t		cursor = (int32_t) (synth_hash(s, 4, u) % (uint64_t) gsize);
		int32_t		pos = 0,
					attempt;

		if (len < 1)
			len = 1;
		if ((u & 1023) == 0)
		{
			IsrfStatus	st = isrf_poll(env);

			if (st != ISRF_OK)
			{
				isrf_synth_free(env, out);
				isrf_free(env, group_start);
				isrf_free(env, group_fill);
				isrf_free(env, group_items);
				isrf_free(env, seen_mark);
				return st;
			}
		}
		for (attempt = 0; pos < len && attempt < 4 * len; attempt++)
		{
			uint64_t	k = (uint64_t) u * 4096 + attempt;
			double		r = synth_unit(s, 5, k);
			int32_t		item;

			if (r < 0.75)
			{
				/* the group's favourite order: the next item in its list */
				item = group_items[group_start[gu] + cursor];
				cursor = (cursor + 1) % gsize;
			}
			else if (r < 0.9)
				item = group_items[group_start[gu] + (int32_t) (synth_hash(s, 6, k) % (uint64_t) gsize)];
			else
				item = (int32_t) (synth_hash(s, 7, k) % (uint64_t) I);
			if (seen_mark[item] == (uint32_t) u + 1)
				continue;
			seen_mark[item] = (uint32_t) u + 1;
			out->user_id[n] = (int64_t) u + 1;
			out->item_id[n] = (int64_t) item + 1;
			out->position[n] = ++pos;
			n++;
		}
	}
	out->n_rows = n;
	isrf_free(env, group_start);
	isrf_free(env, group_fill);
	isrf_free(env, group_items);
	isrf_free(env, seen_mark);
	return ISRF_OK;

nomem:
	isrf_synth_free(env, out);
	isrf_free(env, group_start);
	isrf_free(env, group_fill);
	isrf_free(env, group_items);
	isrf_free(env, seen_mark);
	return ISRF_ERR_NOMEM;
}

void
isrf_synth_free(IsrfEnv *env, IsrfSynthData *d)
{
	isrf_free(env, d->user_id);
	isrf_free(env, d->item_id);
	isrf_free(env, d->position);
	isrf_free(env, d->user_group);
	isrf_free(env, d->item_group);
	memset(d, 0, sizeof(*d));
}

/* Topic word w of group g; groups past the word lists reuse them with a suffix. */
static void
synth_topic(int32_t g, int w, char *buf, size_t len)
{
	if (g < SYNTH_N_TOPICS)
		snprintf(buf, len, "%s", synth_topics[g][w]);
	else
		snprintf(buf, len, "%s%d", synth_topics[g % SYNTH_N_TOPICS][w], g / SYNTH_N_TOPICS);
}

void
isrf_synth_item_text(const IsrfSynthConfig *cfg, const IsrfSynthData *d,
					 int32_t i, int field, char *buf, size_t len)
{
	int32_t		g = d->item_group[i];
	int32_t		other = (g + 1 + (int32_t) (synth_hash(cfg->seed, 8, i) % (uint64_t) (cfg->n_groups > 1 ? cfg->n_groups - 1 : 1))) % cfg->n_groups;
	char		t1[48],
				t2[48],
				t3[48];
	const char *gen = synth_generic[synth_hash(cfg->seed, 9, i) % SYNTH_N_GENERIC];

	synth_topic(g, (int) (synth_hash(cfg->seed, 10, i) % 8), t1, sizeof(t1));
	synth_topic(g, (int) (synth_hash(cfg->seed, 11, i) % 8), t2, sizeof(t2));
	synth_topic(other, (int) (synth_hash(cfg->seed, 12, i) % 8), t3, sizeof(t3));
	switch (field)
	{
		case 0:
			snprintf(buf, len, "%s %s %s no. %d", gen, t1, t2, i + 1);
			break;
		case 1:
			synth_topic(g, 0, t3, sizeof(t3));
			snprintf(buf, len, "%s", t3);
			break;
		case 2:
			snprintf(buf, len, "People who love %s and %s would enjoy this %s item.", t1, t2, gen);
			break;
		case 3:
			snprintf(buf, len, "Those only interested in %s may find it disappointing.", t3);
			break;
		default:
			snprintf(buf, len, "A %s %s with %s details.", gen, t1, t2);
			break;
	}
}

void
isrf_synth_user_text(const IsrfSynthConfig *cfg, const IsrfSynthData *d,
					 int32_t u, char *buf, size_t len)
{
	int32_t		g = d->user_group[u];
	char		t1[48],
				t2[48],
				t3[48];

	synth_topic(g, (int) (synth_hash(cfg->seed, 13, u) % 8), t1, sizeof(t1));
	synth_topic(g, (int) (synth_hash(cfg->seed, 14, u) % 8), t2, sizeof(t2));
	/* one word in five points at another group: the descriptions are noisy */
	synth_topic((synth_hash(cfg->seed, 15, u) % 5 == 0) ? (g + 1) % cfg->n_groups : g,
				(int) (synth_hash(cfg->seed, 16, u) % 8), t3, sizeof(t3));
	snprintf(buf, len, "Enjoys %s, %s and %s.", t1, t2, t3);
}
