/*
 * model/genrec_train.c
 *	  Training the generative model: semantic IDs, then every position of
 *	  every user's train prefix, AdamW with warm-up and cosine decay, early
 *	  stopping on validation NDCG@10 of the dense head's full ranking, and
 *	  finally the score weights chosen on validation (scorer_tune.c).
 */
#include "model/genrec_internal.h"

#include "eval/metrics.h"
#include "model/semantic_ids.h"
#include "nn/layers.h"
#include "nn/optim.h"

#include <math.h>
#include <string.h>

/* batches whose users are sorted by length together */
#define GR_BUCKET 32

IsrfStatus
isrf_genrec_config_check(IsrfEnv *env, const IsrfGenrecConfig *c)
{
	if (c->d_model < 2 || c->d_model > 1024)
		return isrf_fail(env, ISRF_ERR_INVALID, "d_model must be in 2..1024 (got %d)", c->d_model);
	if (c->n_heads < 1 || c->d_model % c->n_heads)
		return isrf_fail(env, ISRF_ERR_INVALID, "n_heads must divide d_model (got %d heads for %d)",
						 c->n_heads, c->d_model);
	if (c->tf_layers < 1 || c->tf_layers > 16)
		return isrf_fail(env, ISRF_ERR_INVALID, "tf_layers must be in 1..16 (got %d)", c->tf_layers);
	if (c->max_len < 1 || c->max_len > 4096)
		return isrf_fail(env, ISRF_ERR_INVALID, "max_len must be in 1..4096 (got %d)", c->max_len);
	if (c->batch_size != 0 && (c->batch_size < 2 || c->batch_size > 65536))
		return isrf_fail(env, ISRF_ERR_INVALID, "batch_size must be 0 or in 2..65536 (got %d)", c->batch_size);
	if (c->epochs < 0 || c->patience < 1 || c->refit_epochs < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "epochs and refit_epochs must be >= 0 and patience >= 1 (got %d, %d, %d)",
						 c->epochs, c->refit_epochs, c->patience);
	if (!(c->lr >= 0.0f && c->lr < 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "lr must be in [0, 1) (got %g)", (double) c->lr);
	if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "dropout must be in [0, 1) (got %g)", (double) c->dropout);
	if (!(c->weight_decay >= 0.0f) || !(c->clip >= 0.0f) || !(c->lambda1 >= 0.0f) ||
		!(c->lambda2 >= 0.0f) || !(c->gen_weight >= 0.0f) || !isfinite(c->alpha))
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "weight_decay, clip, lambda1, lambda2 and gen_weight must be >= 0 and alpha finite");
	if (!(c->tau > 0.0f))
		return isrf_fail(env, ISRF_ERR_INVALID, "tau must be > 0 (got %g)", (double) c->tau);
	if (c->semid_levels < 1 || c->semid_levels > ISRF_GENREC_MAX_LEVELS - 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "semid_levels must be in 1..%d (got %d)",
						 ISRF_GENREC_MAX_LEVELS - 1, c->semid_levels);
	if (c->semid_codebook < 2 || c->semid_codebook > 65536)
		return isrf_fail(env, ISRF_ERR_INVALID, "semid_codebook must be in 2..65536 (got %d)",
						 c->semid_codebook);
	if (c->eval_users < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "eval_users must be >= 0 (got %d)", c->eval_users);
	return ISRF_OK;
}

/* Stable sort of users[0..n) by key[user] (merge sort through tmp). */
static void
gr_sort_by_length(int32_t *users, int32_t n, const int32_t *key, int32_t *tmp)
{
	int32_t		w;

	for (w = 1; w < n; w *= 2)
	{
		int32_t		lo;

		for (lo = 0; lo < n; lo += 2 * w)
		{
			int32_t		mid = lo + w < n ? lo + w : n,
						hi = lo + 2 * w < n ? lo + 2 * w : n,
						a = lo,
						b = mid,
						k = lo;

			while (a < mid && b < hi)
				tmp[k++] = key[users[b]] < key[users[a]] ? users[b++] : users[a++];
			while (a < mid)
				tmp[k++] = users[a++];
			while (b < hi)
				tmp[k++] = users[b++];
		}
		memcpy(users, tmp, (size_t) n * 4);
	}
}

/*
 * Order the validation users by input length so the encoder batches pad
 * little (metrics are sums, so order does not matter).  scratch has n ints.
 */
static void
gr_sort_val(int32_t *vu, int32_t *vin, int32_t *vt, int32_t n, int32_t *tmp, int32_t *scratch)
{
	int32_t		i;

	/* sort positions by their input length, then permute the three arrays */
	for (i = 0; i < n; i++)
		scratch[i] = i;
	gr_sort_by_length(scratch, n, vin, tmp);
	for (i = 0; i < n; i++)
		tmp[i] = vu[scratch[i]];
	memcpy(vu, tmp, (size_t) n * 4);
	for (i = 0; i < n; i++)
		tmp[i] = vt[scratch[i]];
	memcpy(vt, tmp, (size_t) n * 4);
	for (i = 0; i < n; i++)
		tmp[i] = vin[scratch[i]];
	memcpy(vin, tmp, (size_t) n * 4);
}

/* Validation users (evaluated: history >= 3, train = all but the last two). */
int32_t
isrf_gr_val_users(const IsrfGenrecData *d, const IsrfGenrecConfig *cfg, int32_t *users,
			 int32_t *n_input, int32_t *target)
{
	int32_t		u,
				n = 0,
				total = 0,
				stride;

	for (u = 0; u < d->n_users; u++)
	{
		int32_t		len = d->seq_ptr[u + 1] - d->seq_ptr[u];

		if (len >= 3 && d->n_train[u] == len - 2)
			total++;
	}
	stride = (cfg->eval_users > 0 && total > cfg->eval_users) ? (total + cfg->eval_users - 1) / cfg->eval_users : 1;
	total = 0;
	for (u = 0; u < d->n_users; u++)
	{
		int32_t		len = d->seq_ptr[u + 1] - d->seq_ptr[u];

		if (len >= 3 && d->n_train[u] == len - 2)
		{
			if (total++ % stride)
				continue;
			users[n] = u;
			n_input[n] = d->n_train[u];
			target[n] = d->seq[d->seq_ptr[u] + d->n_train[u]];
			n++;
		}
	}
	return n;
}

/*
 * The exponential moving average of the weights (config ema): its two
 * blocks, and room to keep the live weights while the average is evaluated.
 */
typedef struct GrEma
{
	float		decay;			/* 0: off */
	float	   *p,
			   *tf,				/* the averages */
			   *keep_p,
			   *keep_tf;		/* the live weights during validation */
} GrEma;

static void
gr_ema_free(IsrfGenrecSession *s, GrEma *e)
{
	isrf_gr_mem_free(s->be, (void **) &e->p);
	isrf_gr_mem_free(s->be, (void **) &e->tf);
	isrf_gr_mem_free(s->be, (void **) &e->keep_p);
	isrf_gr_mem_free(s->be, (void **) &e->keep_tf);
}

/* Start the averages at the initial weights. */
static IsrfStatus
gr_ema_init(IsrfGenrecSession *s, GrEma *e, float decay)
{
	IsrfBackend *be = s->be;
	size_t		np = s->lay.total * 4,
				nt = s->tf->n_params * 4;

	memset(e, 0, sizeof(*e));
	e->decay = decay;
	if (decay <= 0.0f)
		return ISRF_OK;
	ISRF_TRY(isrf_gr_mem(be, (void **) &e->p, np));
	ISRF_TRY(isrf_gr_mem(be, (void **) &e->tf, nt));
	ISRF_TRY(isrf_gr_mem(be, (void **) &e->keep_p, np));
	ISRF_TRY(isrf_gr_mem(be, (void **) &e->keep_tf, nt));
	ISRF_TRY(be->copy(be, e->p, s->p, np));
	return be->copy(be, e->tf, s->tf->params, nt);
}

/* After step number step: average = d * average + (1 - d) * weights, d warming up. */
static IsrfStatus
gr_ema_update(IsrfGenrecSession *s, GrEma *e, int64_t step)
{
	IsrfBackend *be = s->be;
	float		d = (float) (1.0 + step) / (float) (10.0 + step);

	if (e->decay <= 0.0f)
		return ISRF_OK;
	if (d > e->decay)
		d = e->decay;
	ISRF_TRY(be->axpby(be, s->lay.total, 1.0f - d, s->p, d, e->p));
	return be->axpby(be, s->tf->n_params, 1.0f - d, s->tf->params, d, e->tf);
}

/* Swap the live weights and the averages (twice restores them). */
static IsrfStatus
gr_ema_swap(IsrfGenrecSession *s, GrEma *e)
{
	IsrfBackend *be = s->be;
	size_t		np = s->lay.total * 4,
				nt = s->tf->n_params * 4;
	float	   *t;

	if (e->decay <= 0.0f)
		return ISRF_OK;
	ISRF_TRY(be->copy(be, e->keep_p, s->p, np));
	ISRF_TRY(be->copy(be, e->keep_tf, s->tf->params, nt));
	ISRF_TRY(be->copy(be, s->p, e->p, np));
	ISRF_TRY(be->copy(be, s->tf->params, e->tf, nt));
	/* the live weights are now in keep_*: they become the other side */
	t = e->p;
	e->p = e->keep_p;
	e->keep_p = t;
	t = e->tf;
	e->tf = e->keep_tf;
	e->keep_tf = t;
	return ISRF_OK;
}

/* What the epochs of one run share: optimizers, the average, the users' order. */
typedef struct GrLoop
{
	IsrfAdamW	o1,
				o2;
	GrEma		ema;
	uint8_t    *mask1,
			   *mask2;
	int32_t    *order,			/* the users who train: two items or more */
			   *tmp,			/* scratch, n_users */
			   *border;			/* batch order */
	int32_t		n_tr,
				bs,
				n_batches;
	float		peak_lr;
	int64_t		step,
				spe,
				total;
} GrLoop;

static void
gr_loop_free(IsrfGenrecSession *s, GrLoop *L)
{
	isrf_adamw_free(&L->o1);
	isrf_adamw_free(&L->o2);
	gr_ema_free(s, &L->ema);
	isrf_free(s->env, L->mask1);
	isrf_free(s->env, L->mask2);
	isrf_free(s->env, L->order);
	isrf_free(s->env, L->tmp);
	isrf_free(s->env, L->border);
	memset(L, 0, sizeof(*L));
}

/*
 * A run of epochs over the users of s->d with two train items or more, from
 * the session's weights: fresh optimizers and average, batch size and peak
 * learning rate by the configuration (or their rules).
 */
static IsrfStatus
gr_loop_init(IsrfGenrecSession *s, int32_t epochs, GrLoop *L)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	const IsrfGenrecConfig *cfg = &s->cfg;
	int32_t		u;
	IsrfStatus	st;

	memset(L, 0, sizeof(*L));
	L->order = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	L->tmp = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	L->border = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	L->mask1 = isrf_alloc(env, s->lay.total + 1);
	L->mask2 = isrf_alloc(env, s->tf->n_params + 1);
	if (!L->order || !L->tmp || !L->border || !L->mask1 || !L->mask2)
	{
		gr_loop_free(s, L);
		return ISRF_ERR_NOMEM;
	}
	for (u = 0; u < d->n_users; u++)
		if (d->n_train[u] >= 2)
			L->order[L->n_tr++] = u;
	if (L->n_tr == 0)
	{
		gr_loop_free(s, L);
		return isrf_fail(env, ISRF_ERR_INVALID, "no user has two train interactions to learn from");
	}
	isrf_gr_decay_mask(s, L->mask1);
	isrf_tf_decay_mask(s->tf, L->mask2);
	if ((st = isrf_adamw_init(s->be, &L->o1, s->lay.total, 0.9f, 0.98f, 1e-8f, cfg->weight_decay, L->mask1)) != ISRF_OK ||
		(st = isrf_adamw_init(s->be, &L->o2, s->tf->n_params, 0.9f, 0.98f, 1e-8f, cfg->weight_decay, L->mask2)) != ISRF_OK ||
		(st = gr_ema_init(s, &L->ema, cfg->ema)) != ISRF_OK)
	{
		gr_loop_free(s, L);
		return st;
	}
	/* 0: a sixteenth of the users who train, between 32 and 256 */
	L->bs = cfg->batch_size > 0 ? cfg->batch_size :
		L->n_tr / 16 < 32 ? 32 : L->n_tr / 16 > 256 ? 256 : L->n_tr / 16;
	/* 0: the square-root scaling rule of Adam, 1e-3 at 64 users per step */
	L->peak_lr = cfg->lr > 0.0f ? cfg->lr : 1e-3f * sqrtf((float) L->bs / 64.0f);
	L->spe = (L->n_tr + L->bs - 1) / L->bs;
	L->n_batches = (int32_t) L->spe;
	L->total = L->spe * epochs;
	return ISRF_OK;
}

/*
 * One epoch: a seeded shuffle of the users (keys salted by salt), runs of
 * GR_BUCKET batches sorted by length so a batch pads little, the batches in
 * a shuffled order.  The learning rate is fixed_lr, or where that is 0 the
 * warm-up and cosine schedule.  *loss: the epoch's mean batch loss.
 */
static IsrfStatus
gr_loop_epoch(IsrfGenrecSession *s, GrLoop *L, uint64_t salt, int32_t epoch, float fixed_lr,
			  IsrfGenrec *out, double *loss)
{
	IsrfBackend *be = s->be;
	const IsrfGenrecConfig *cfg = &s->cfg;
	int32_t		i,
				bidx,
				nb = 0,
				bs = L->bs;
	double		sum = 0.0;
	IsrfStatus	st;

	for (i = L->n_tr - 1; i > 0; i--)
	{
		int32_t		j = (int32_t) (isrf_nn_hash64(isrf_nn_key(cfg->seed, salt + 100 + (uint64_t) epoch, (uint64_t) i)) % (uint64_t) (i + 1)),
					t = L->order[i];

		L->order[i] = L->order[j];
		L->order[j] = t;
	}
	for (i = 0; i < L->n_tr; i += GR_BUCKET * bs)
	{
		int32_t		n = L->n_tr - i < GR_BUCKET * bs ? L->n_tr - i : GR_BUCKET * bs;

		gr_sort_by_length(L->order + i, n, s->d->n_train, L->tmp);
	}
	for (i = 0; i < L->n_batches; i++)
		L->border[i] = i;
	for (i = L->n_batches - 1; i > 0; i--)
	{
		int32_t		j = (int32_t) (isrf_nn_hash64(isrf_nn_key(cfg->seed, salt + 300 + (uint64_t) epoch, (uint64_t) i)) % (uint64_t) (i + 1)),
					t = L->border[i];

		L->border[i] = L->border[j];
		L->border[j] = t;
	}
	for (bidx = 0; bidx < L->n_batches; bidx++)
	{
		int32_t		first = L->border[bidx] * bs;
		int32_t		b = L->n_tr - first < bs ? L->n_tr - first : bs;
		double		bl;
		float	   *garr[2];
		size_t		gsz[2];
		float		norm,
					lr;

		if ((st = isrf_poll(s->env)) != ISRF_OK)
			return st;
		if ((st = be->mem_zero(be, s->gp, s->lay.total * 4)) != ISRF_OK ||
			(st = isrf_tf_zero_grad(s->tf)) != ISRF_OK)
			return st;
		if ((st = isrf_gr_train_batch(s, b, L->order + first, isrf_nn_key(cfg->seed, salt + 200 + (uint64_t) epoch, (uint64_t) bidx), &bl)) != ISRF_OK)
			return st;
		garr[0] = s->gp;
		garr[1] = s->tf->grads;
		gsz[0] = s->lay.total;
		gsz[1] = s->tf->n_params;
		if ((st = isrf_grad_clip(be, garr, gsz, 2, cfg->clip, &norm)) != ISRF_OK)
			return st;
		L->step++;
		if (!isfinite(norm))
		{
			out->nonfinite_steps++;
			continue;			/* skip a step that blew up rather than poison the weights */
		}
		lr = fixed_lr > 0.0f ? fixed_lr :
			isrf_lr_schedule(L->peak_lr, L->step, L->spe < 100 ? L->spe : 100, L->total, 0.1f);
		if ((st = isrf_adamw_step(&L->o1, s->p, s->gp, lr)) != ISRF_OK ||
			(st = isrf_adamw_step(&L->o2, s->tf->params, s->tf->grads, lr)) != ISRF_OK ||
			(st = gr_ema_update(s, &L->ema, L->step)) != ISRF_OK)
			return st;
		sum += bl;
		nb++;
	}
	*loss = nb ? sum / nb : 0.0;
	return ISRF_OK;
}

/*
 * The epoch hook's report of an epoch (of the fit, or with refit of the
 * refit) that began at t0, of a phase that began at t_start, with `left`
 * epochs to come; nothing without a hook.
 */
static IsrfStatus
gr_report(IsrfGenrecEpochHook hook, void *hook_arg, bool refit, int32_t epoch, int32_t epochs,
		  const IsrfGenrec *out, double loss, double hr, double nd, double t0, double t_start,
		  int32_t left)
{
	IsrfEpochReport r;

	if (hook == NULL)
		return ISRF_OK;
	memset(&r, 0, sizeof(r));
	r.refit = refit;
	r.epoch = epoch;
	r.epochs = epochs;
	r.best_epoch = out->best_epoch;
	r.loss = loss;
	r.val_hr10 = hr;
	r.val_ndcg10 = nd;
	r.seconds = isrf_now() - t0;
	r.elapsed = isrf_now() - t_start;
	r.eta = r.elapsed / epoch * left;
	r.nonfinite_steps = out->nonfinite_steps;
	return hook(hook_arg, &r);
}

/* The training loop proper; s is a training session with its weights set. */
static IsrfStatus
gr_fit(IsrfGenrecSession *s, IsrfGenrecEpochHook hook, void *hook_arg, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	const IsrfGenrecData *d = s->d;
	const IsrfGenrecConfig *cfg = &s->cfg;
	GrLoop		L;
	int32_t    *vu = NULL,
			   *vin = NULL,
			   *vt = NULL,
			   *vr = NULL;
	int32_t		n_val,
				epoch,
				bad = 0;
	double		best = -1.0,
				t_start = isrf_now();
	IsrfStatus	st = ISRF_OK;

	memset(&L, 0, sizeof(L));
	vu = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vin = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vt = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	vr = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	if (!vu || !vin || !vt || !vr)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	if ((st = gr_loop_init(s, cfg->epochs, &L)) != ISRF_OK)
		goto done;
	n_val = isrf_gr_val_users(d, cfg, vu, vin, vt);
	gr_sort_val(vu, vin, vt, n_val, L.tmp, vr);
	isrf_log(env, "isrf: %d users per step, peak learning rate %g", (int) L.bs, (double) L.peak_lr);

	/* best weights so far live in out */
	if ((st = isrf_gr_weights_out(s, out)) != ISRF_OK)
		goto done;
	for (epoch = 1; epoch <= cfg->epochs; epoch++)
	{
		double		t0 = isrf_now(),
					ep_loss,
					hr,
					nd;
		IsrfMetrics val;
		int32_t		i;

		if ((st = gr_loop_epoch(s, &L, 0, epoch, 0.0f, out, &ep_loss)) != ISRF_OK)
			goto done;
		/* validation: full ranking with the dense head (of the averaged weights, with ema) */
		if ((st = gr_ema_swap(s, &L.ema)) != ISRF_OK ||
			(st = isrf_gr_table_forward(s)) != ISRF_OK ||
			(st = isrf_genrec_rank_targets(s, n_val, vu, vin, vt, vr)) != ISRF_OK)
			goto done;
		memset(&val, 0, sizeof(val));
		for (i = 0; i < n_val; i++)
			isrf_metrics_add(&val, vr[i]);
		val = isrf_metrics_mean(&val);
		hr = val.hr10;
		nd = val.ndcg10;
		out->epochs_run = epoch;
		isrf_log(env, "isrf: epoch %d loss %.4f val HR@10 %.4f NDCG@10 %.4f (%.1f s)",
				 epoch, ep_loss, hr, nd, isrf_now() - t0);
		if (nd > best)
		{
			best = nd;
			bad = 0;
			out->best_epoch = epoch;
			out->best_val_hr10 = hr;
			out->best_val_ndcg10 = nd;
			if ((st = isrf_gr_weights_out(s, out)) != ISRF_OK)
				goto done;
		}
		else
			bad++;
		/* training goes on from the live weights */
		if ((st = gr_ema_swap(s, &L.ema)) != ISRF_OK)
			goto done;
		/* the epochs left, then the refit's (an epoch of it costs about one of these) */
		if ((st = gr_report(hook, hook_arg, false, epoch, cfg->epochs, out, ep_loss, hr, nd, t0,
							t_start, (bad >= cfg->patience ? 0 : cfg->epochs - epoch) +
							cfg->refit_epochs)) != ISRF_OK)
			goto done;
		if (bad >= cfg->patience)
			break;
	}
	out->t_train = isrf_now() - t_start;

done:
	gr_loop_free(s, &L);
	isrf_free(env, vu);
	isrf_free(env, vin);
	isrf_free(env, vt);
	isrf_free(env, vr);
	return st;
}

/* The epoch hook's report that the weights' choice begins (IsrfEpochReport). */
static IsrfStatus
gr_report_weights(IsrfGenrecEpochHook hook, void *hook_arg, const IsrfGenrecConfig *cfg,
				  const IsrfGenrec *out)
{
	IsrfEpochReport r;

	if (hook == NULL)
		return ISRF_OK;
	memset(&r, 0, sizeof(r));
	r.weights = true;
	r.epoch = out->epochs_run;
	r.epochs = cfg->epochs;
	r.best_epoch = out->best_epoch;
	r.loss = r.seconds = NAN;
	/* the fit's time, and the refit's epochs at the fit's mean epoch */
	r.elapsed = out->t_train;
	r.eta = out->epochs_run > 0 ? out->t_train / out->epochs_run * cfg->refit_epochs : 0.0;
	r.val_hr10 = out->best_val_hr10;
	r.val_ndcg10 = out->best_val_ndcg10;
	r.nonfinite_steps = out->nonfinite_steps;
	return hook(hook_arg, &r);
}

/*
 * The refit (refit_epochs): from the kept weights, epochs on every user's
 * whole history -- the validation and test items too -- at a tenth of the
 * peak learning rate, with a fresh optimizer and average.  out keeps the
 * weights before it as eval_params / eval_tf_params (evaluation and every
 * choice made on validation use those) and serves the refit's average.
 */
static IsrfStatus
gr_refit(IsrfGenrecSession *s, IsrfGenrecEpochHook hook, void *hook_arg, IsrfGenrec *out)
{
	IsrfEnv    *env = s->env;
	IsrfBackend *be = s->be;
	const IsrfGenrecData *d = s->d;
	const IsrfGenrecConfig *cfg = &s->cfg;
	IsrfGenrecData whole = *d;
	int32_t    *len;
	GrLoop		L;
	int32_t		u,
				epoch;
	double		t_start = isrf_now();
	IsrfStatus	st;

	memset(&L, 0, sizeof(L));
	len = isrf_alloc(env, (size_t) d->n_users * 4 + 4);
	out->eval_params = isrf_alloc(env, out->n_params * 4 + 4);
	out->eval_tf_params = isrf_alloc(env, out->n_tf_params * 4 + 4);
	if (!len || !out->eval_params || !out->eval_tf_params)
	{
		isrf_free(env, len);
		return ISRF_ERR_NOMEM;
	}
	memcpy(out->eval_params, out->params, out->n_params * 4);
	memcpy(out->eval_tf_params, out->tf_params, out->n_tf_params * 4);
	for (u = 0; u < d->n_users; u++)
		len[u] = d->seq_ptr[u + 1] - d->seq_ptr[u];
	whole.n_train = len;
	s->d = &whole;
	/* the group-interest cache has rows for the train items only: rebuilt on first use */
	isrf_gr_drop_train_cache(s);
	if ((st = be->upload(be, s->p, out->params, s->lay.total * 4)) != ISRF_OK ||
		(st = be->upload(be, s->tf->params, out->tf_params, s->tf->n_params * 4)) != ISRF_OK ||
		(st = gr_loop_init(s, cfg->refit_epochs, &L)) != ISRF_OK)
		goto done;
	for (epoch = 1; epoch <= cfg->refit_epochs; epoch++)
	{
		double		t0 = isrf_now(),
					loss;

		if ((st = gr_loop_epoch(s, &L, 1000, epoch, 0.1f * L.peak_lr, out, &loss)) != ISRF_OK)
			goto done;
		isrf_log(env, "isrf: refit epoch %d of %d on whole histories, loss %.4f (%.1f s)",
				 epoch, cfg->refit_epochs, loss, isrf_now() - t0);
		if ((st = gr_report(hook, hook_arg, true, epoch, cfg->refit_epochs, out, loss, NAN, NAN,
							t0, t_start, cfg->refit_epochs - epoch)) != ISRF_OK)
			goto done;
	}
	if ((st = gr_ema_swap(s, &L.ema)) == ISRF_OK)
		st = isrf_gr_weights_out(s, out);
	out->t_train += isrf_now() - t_start;

done:
	isrf_gr_drop_train_cache(s);
	s->d = d;
	gr_loop_free(s, &L);
	isrf_free(env, len);
	return st;
}

IsrfStatus
isrf_genrec_train(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d,
				  const IsrfGenrecConfig *cfg, IsrfGenrecEpochHook hook, void *hook_arg,
				  IsrfGenrec *out)
{
	IsrfGenrecSession *s = NULL;
	IsrfSemIds	ids;
	IsrfStatus	st;
	size_t		ni = (size_t) d->n_items,
				dm = (size_t) d->dm;

	memset(out, 0, sizeof(*out));
	memset(&ids, 0, sizeof(ids));
	ISRF_TRY(isrf_genrec_config_check(env, cfg));
	if (d->n_items < 1 || d->n_users < 1 || d->dm < 1)
		return isrf_fail(env, ISRF_ERR_INVALID, "the generative model needs users, items and features (got %d, %d, dm %d)",
						 d->n_users, d->n_items, d->dm);
	out->cfg = *cfg;
	out->n_items = d->n_items;
	out->dm = d->dm;
	out->scale[0] = 1.0f / isrf_gr_rms(d->item_feat, ni * dm);
	out->scale[1] = 1.0f / isrf_gr_rms(d->item_explicit, ni * dm);
	out->scale[2] = 1.0f / isrf_gr_rms(d->user_explicit, (size_t) d->n_users * dm);
	out->scale[3] = 1.0f / isrf_gr_rms(d->user_group, (size_t) d->n_users * dm);
	if (cfg->use_generative)
	{
		IsrfSemIdConfig sc;
		int32_t		j;

		isrf_semid_config_default(&sc);
		sc.levels = cfg->semid_levels;
		sc.codebook_size = cfg->semid_codebook;
		sc.kmeans.seed = cfg->seed;
		if ((st = isrf_semid_build(env, be, d->item_feat, d->n_items, d->dm, &sc, &ids)) != ISRF_OK)
			goto fail;
		out->levels = ids.levels + 1;
		for (j = 0; j < out->levels; j++)
			out->codebook_sizes[j] = ids.codebook_sizes[j];
		out->codes = isrf_alloc(env, ni * (size_t) out->levels * 4 + 4);
		if (out->codes == NULL)
		{
			st = ISRF_ERR_NOMEM;
			goto fail;
		}
		memcpy(out->codes, ids.codes, ni * (size_t) out->levels * 4);
		isrf_semid_free(env, &ids);
	}
	if ((st = isrf_gr_word_count(env, cfg, d, &out->n_words)) != ISRF_OK ||
		(st = isrf_gr_session_create(env, be, cfg, d, out->levels, out->codebook_sizes, out->codes,
									 out->scale, NULL, out->n_words, true, &s)) != ISRF_OK)
		goto fail;
	if (out->n_words > 0)
		isrf_log(env, "isrf: word embeddings: %d words of the items' text", out->n_words);
	out->n_params = s->lay.total;
	out->n_tf_params = s->tf->n_params;
	out->params = isrf_alloc(env, out->n_params * 4 + 4);
	out->tf_params = isrf_alloc(env, out->n_tf_params * 4 + 4);
	if (!out->params || !out->tf_params)
	{
		st = ISRF_ERR_NOMEM;
		goto fail;
	}
	if ((st = isrf_gr_init_params(s)) != ISRF_OK)
		goto fail;
	if (cfg->epochs > 0)
		st = gr_fit(s, hook, hook_arg, out);
	if (st == ISRF_OK && cfg->epochs > 0 && cfg->use_prior)
	{
		/* the kept (best) weights back into the session, then beta */
		if ((st = gr_report_weights(hook, hook_arg, cfg, out)) == ISRF_OK &&
			(st = be->upload(be, s->p, out->params, s->lay.total * 4)) == ISRF_OK &&
			(st = be->upload(be, s->tf->params, out->tf_params, s->tf->n_params * 4)) == ISRF_OK)
			st = isrf_gr_tune_scorer(s, out);
	}
	else if (st == ISRF_OK && cfg->epochs == 0)
		st = isrf_gr_weights_out(s, out);	/* the initial weights */
	/* every choice on validation is made: now the refit for serving */
	if (st == ISRF_OK && cfg->epochs > 0 && cfg->refit_epochs > 0)
		st = gr_refit(s, hook, hook_arg, out);
	if (st != ISRF_OK)
		goto fail;
	isrf_genrec_session_close(s);
	return ISRF_OK;

fail:
	isrf_semid_free(env, &ids);
	isrf_genrec_session_close(s);
	isrf_genrec_free(env, out);
	return st;
}

IsrfStatus
isrf_genrec_retune(IsrfEnv *env, IsrfBackend *be, const IsrfGenrecData *d, IsrfGenrec *g)
{
	IsrfGenrecSession *s;
	IsrfStatus	st;

	ISRF_TRY(isrf_genrec_session_open_eval(env, be, g, d, &s));
	st = isrf_gr_tune_scorer(s, g);
	isrf_genrec_session_close(s);
	return st;
}
