/*
 * model/beam_search.c
 *	  The valid-code trie and constrained beam search over it.
 *
 * The search itself is light bookkeeping on the host: at each level the
 * decoder step (the model, on whatever device it runs) fills the next
 * code's log-probabilities for every live beam entry of every request in
 * one call, and a bounded heap per request keeps its best continuations.
 * Exclusions (a user's history) are handled by pruning: per request, the
 * ancestors of excluded items carry a count, and a node whose leaves are
 * all excluded is never entered, so every beam entry still leads to at
 * least one item the request may return.
 */
#include "model/beam_search.h"

#include <math.h>
#include <string.h>

void
isrf_trie_free(IsrfEnv *env, IsrfTrie *t)
{
	isrf_free(env, t->codebook_sizes);
	isrf_free(env, t->level_start);
	isrf_free(env, t->parent);
	isrf_free(env, t->first_child);
	isrf_free(env, t->n_children);
	isrf_free(env, t->code);
	isrf_free(env, t->n_leaves);
	isrf_free(env, t->leaf_item);
	isrf_free(env, t->item_leaf);
	memset(t, 0, sizeof(*t));
}

/* Check the shape and the range of every code. */
static IsrfStatus
beam_check_codes(IsrfEnv *env, const int32_t *codes, int32_t n_items,
				 int32_t levels, const int32_t *codebook_sizes)
{
	int32_t		i,
				t;

	if (n_items < 0)
		return isrf_fail(env, ISRF_ERR_INVALID, "trie: negative item count %d", n_items);
	if (levels < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "trie: code length must be at least 1, not %d", levels);
	for (t = 0; t < levels; t++)
		if (codebook_sizes[t] < 1)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "trie: codebook size of level %d is %d, must be positive",
							 t, codebook_sizes[t]);
	for (i = 0; i < n_items; i++)
		for (t = 0; t < levels; t++)
		{
			int32_t		c = codes[(size_t) i * levels + t];

			if (c < 0 || c >= codebook_sizes[t])
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "trie: item %d has code %d at level %d, outside 0..%d",
								 i, c, t, codebook_sizes[t] - 1);
		}
	return ISRF_OK;
}

/*
 * Fill the node arrays from the items in code order; diff[p] is the first
 * level where sorted item p differs from item p - 1 (0 for p = 0), so item
 * p opens a new node at every depth deeper than diff[p].
 */
static void
beam_fill_nodes(IsrfTrie *t, const int32_t *codes, const int32_t *order,
				const int32_t *diff, int32_t *next, int32_t *cur)
{
	int32_t		L = t->levels,
				p,
				d;

	t->parent[0] = -1;
	t->code[0] = -1;
	for (d = 0; d <= L; d++)
		next[d] = t->level_start[d];
	next[0] = 1;
	cur[0] = 0;
	for (p = 0; p < t->n_items; p++)
	{
		int32_t		item = order[p];
		const int32_t *c = codes + (size_t) item * L;

		for (d = diff[p] + 1; d <= L; d++)
		{
			int32_t		v = next[d]++,
						u = cur[d - 1];

			t->parent[v] = u;
			t->code[v] = c[d - 1];
			t->first_child[v] = -1;
			if (t->n_children[u]++ == 0)
				t->first_child[u] = v;
			cur[d] = v;
		}
		for (d = 0; d <= L; d++)
			t->n_leaves[cur[d]]++;
		t->leaf_item[cur[L] - t->level_start[L]] = item;
		t->item_leaf[item] = cur[L];
	}
}

IsrfStatus
isrf_trie_build(IsrfEnv *env, const int32_t *codes, int32_t n_items,
				int32_t levels, const int32_t *codebook_sizes, IsrfTrie *out)
{
	IsrfTrie	t;
	int32_t    *order = NULL,
			   *tmp = NULL,
			   *diff = NULL,
			   *next = NULL,
			   *cur = NULL;
	int64_t		n_nodes = 1;
	int32_t		p,
				d;
	IsrfStatus	st = ISRF_OK;

	memset(out, 0, sizeof(*out));
	ISRF_TRY(beam_check_codes(env, codes, n_items, levels, codebook_sizes));
	memset(&t, 0, sizeof(t));
	t.levels = levels;
	t.n_items = n_items;

	order = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + 1));
	tmp = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + 1));
	diff = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + 1));
	next = isrf_calloc(env, (size_t) levels + 2, sizeof(int32_t));
	cur = isrf_calloc(env, (size_t) levels + 1, sizeof(int32_t));
	t.codebook_sizes = isrf_alloc(env, sizeof(int32_t) * (size_t) levels);
	t.level_start = isrf_calloc(env, (size_t) levels + 2, sizeof(int32_t));
	if (!order || !tmp || !diff || !next || !cur || !t.codebook_sizes || !t.level_start)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	memcpy(t.codebook_sizes, codebook_sizes, sizeof(int32_t) * (size_t) levels);
	for (p = 0; p < n_items; p++)
		order[p] = p;
	isrf_sort_by_code(order, tmp, n_items, codes, levels, levels);

	/* next[d] counts the nodes of depth d */
	for (p = 0; p < n_items; p++)
	{
		const int32_t *c = codes + (size_t) order[p] * levels;

		d = 0;
		if (p > 0)
		{
			const int32_t *prev = codes + (size_t) order[p - 1] * levels;

			while (d < levels && prev[d] == c[d])
				d++;
			if (d == levels)
			{
				st = isrf_fail(env, ISRF_ERR_INVALID,
							   "trie: items %d and %d have the same code",
							   order[p - 1], order[p]);
				goto done;
			}
		}
		diff[p] = d;
		for (d = diff[p] + 1; d <= levels; d++)
			next[d]++;
	}
	t.level_start[0] = 0;
	t.level_start[1] = 1;
	for (d = 1; d <= levels; d++)
	{
		n_nodes += next[d];
		if (n_nodes > INT32_MAX)
		{
			st = isrf_fail(env, ISRF_ERR_INVALID, "trie: more than %d nodes", INT32_MAX);
			goto done;
		}
		t.level_start[d + 1] = (int32_t) n_nodes;
	}
	t.n_nodes = (int32_t) n_nodes;

	t.parent = isrf_alloc(env, sizeof(int32_t) * (size_t) n_nodes);
	t.first_child = isrf_alloc(env, sizeof(int32_t) * (size_t) n_nodes);
	t.n_children = isrf_calloc(env, (size_t) n_nodes, sizeof(int32_t));
	t.code = isrf_alloc(env, sizeof(int32_t) * (size_t) n_nodes);
	t.n_leaves = isrf_calloc(env, (size_t) n_nodes, sizeof(int32_t));
	t.leaf_item = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + 1));
	t.item_leaf = isrf_alloc(env, sizeof(int32_t) * ((size_t) n_items + 1));
	if (!t.parent || !t.first_child || !t.n_children || !t.code || !t.n_leaves ||
		!t.leaf_item || !t.item_leaf)
	{
		st = ISRF_ERR_NOMEM;
		goto done;
	}
	t.first_child[0] = -1;
	beam_fill_nodes(&t, codes, order, diff, next, cur);

done:
	isrf_free(env, order);
	isrf_free(env, tmp);
	isrf_free(env, diff);
	isrf_free(env, next);
	isrf_free(env, cur);
	if (st != ISRF_OK)
		isrf_trie_free(env, &t);
	else
		*out = t;
	return st;
}

/* The child of node u with the given code, or -1. */
static int32_t
beam_child(const IsrfTrie *t, int32_t u, int32_t code)
{
	int32_t		lo = t->first_child[u],
				hi = lo + t->n_children[u];

	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (t->code[mid] < code)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->first_child[u] + t->n_children[u] && t->code[lo] == code)
		return lo;
	return -1;
}

int32_t
isrf_trie_lookup(const IsrfTrie *t, const int32_t *codes)
{
	int32_t		u = 0,
				d;

	if (t->n_items == 0)
		return -1;
	for (d = 0; d < t->levels; d++)
	{
		u = beam_child(t, u, codes[d]);
		if (u < 0)
			return -1;
	}
	return t->leaf_item[u - t->level_start[t->levels]];
}

/*
 * Per-request exclusion: the sorted list of nodes above excluded items
 * (leaves included) with how many excluded items each has below.
 */
typedef struct BeamExcl
{
	int32_t		off;			/* into the shared node/count arrays */
	int32_t		len;
	int32_t		n_items;		/* distinct excluded items */
} BeamExcl;

/* Items excluded below node v for one request (binary search). */
static int32_t
beam_excl_count(const BeamExcl *ex, const int32_t *nodes, const int32_t *counts,
				int32_t v)
{
	int32_t		lo = ex->off,
				hi = ex->off + ex->len;

	while (lo < hi)
	{
		int32_t		mid = lo + (hi - lo) / 2;

		if (nodes[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < ex->off + ex->len && nodes[lo] == v) ? counts[lo] : 0;
}

/* True when node v still leads to an item the request may return. */
static inline bool
beam_alive(const IsrfTrie *t, const BeamExcl *ex, const int32_t *nodes,
		   const int32_t *counts, int32_t v)
{
	if (t->n_leaves[v] > ex->n_items)
		return true;
	return t->n_leaves[v] > beam_excl_count(ex, nodes, counts, v);
}

/* Merge sort of an int32 array (tmp holds n entries). */
static void
beam_sort_ints(int32_t *a, int32_t *tmp, int32_t n)
{
	int32_t		run,
				lo;

	for (run = 1; run < n; run *= 2)
	{
		for (lo = 0; lo < n; lo += 2 * run)
		{
			int32_t		mid = lo + run < n ? lo + run : n,
						hi = lo + 2 * run < n ? lo + 2 * run : n,
						x = lo,
						y = mid,
						o = lo;

			while (x < mid && y < hi)
				tmp[o++] = (a[y] < a[x]) ? a[y++] : a[x++];
			while (x < mid)
				tmp[o++] = a[x++];
			while (y < hi)
				tmp[o++] = a[y++];
		}
		memcpy(a, tmp, sizeof(int32_t) * (size_t) n);
	}
}

/*
 * Build the exclusion lists of every request: validate the items, drop
 * repeats, and count excluded items under each of their ancestors.
 */
static IsrfStatus
beam_build_exclusions(IsrfEnv *env, const IsrfTrie *t, int32_t n_requests,
					  const IsrfBeamRequest *req, BeamExcl *ex,
					  int32_t **nodes_out, int32_t **counts_out)
{
	int64_t		total = 0;
	int32_t    *nodes,
			   *counts,
			   *items,
			   *tmp;
	int32_t		r,
				i,
				max_ex = 0,
				pos = 0;

	for (r = 0; r < n_requests; r++)
	{
		if (req[r].n_exclude < 0 || (req[r].n_exclude > 0 && req[r].exclude == NULL))
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "beam search: request %d has a bad exclusion list (%d items)",
							 r, req[r].n_exclude);
		total += (int64_t) req[r].n_exclude * (t->levels + 1);
		if (req[r].n_exclude > max_ex)
			max_ex = req[r].n_exclude;
	}
	if (total > INT32_MAX)
		return isrf_fail(env, ISRF_ERR_INVALID, "beam search: exclusion lists too long");
	nodes = isrf_alloc(env, sizeof(int32_t) * ((size_t) total + 1));
	counts = isrf_alloc(env, sizeof(int32_t) * ((size_t) total + 1));
	items = isrf_alloc(env, sizeof(int32_t) * ((size_t) max_ex + 1));
	tmp = isrf_alloc(env, sizeof(int32_t) * ((size_t) total + max_ex + 1));
	if (!nodes || !counts || !items || !tmp)
	{
		isrf_free(env, nodes);
		isrf_free(env, counts);
		isrf_free(env, items);
		isrf_free(env, tmp);
		return ISRF_ERR_NOMEM;
	}
	for (r = 0; r < n_requests; r++)
	{
		int32_t		n = 0,
					start = pos,
					j;

		for (i = 0; i < req[r].n_exclude; i++)
		{
			int32_t		it = req[r].exclude[i];

			if (it < 0 || it >= t->n_items)
			{
				isrf_free(env, nodes);
				isrf_free(env, counts);
				isrf_free(env, items);
				isrf_free(env, tmp);
				return isrf_fail(env, ISRF_ERR_INVALID,
								 "beam search: request %d excludes item %d, outside 0..%d",
								 r, it, t->n_items - 1);
			}
			items[i] = it;
		}
		beam_sort_ints(items, tmp, req[r].n_exclude);
		for (i = 0; i < req[r].n_exclude; i++)
		{
			int32_t		v;

			if (i > 0 && items[i] == items[i - 1])
				continue;
			n++;
			for (v = t->item_leaf[items[i]]; v >= 0; v = t->parent[v])
				nodes[pos++] = v;
		}
		/* run-length the sorted ancestors into (node, count) */
		beam_sort_ints(nodes + start, tmp, pos - start);
		j = start;
		for (i = start; i < pos; i++)
		{
			if (j > start && nodes[j - 1] == nodes[i])
				counts[j - 1]++;
			else
			{
				nodes[j] = nodes[i];
				counts[j] = 1;
				j++;
			}
		}
		ex[r].off = start;
		ex[r].len = j - start;
		ex[r].n_items = n;
		pos = j;
	}
	isrf_free(env, items);
	isrf_free(env, tmp);
	*nodes_out = nodes;
	*counts_out = counts;
	return ISRF_OK;
}

/* a better than b: higher score, then lower node (lower code prefix) */
static inline bool
beam_better(float sa, int32_t na, float sb, int32_t nb)
{
	return sa > sb || (sa == sb && na < nb);
}

/* Min-heap (worst on top) of candidate continuations. */
typedef struct BeamHeap
{
	float	   *score;
	int32_t    *node;
	int32_t    *from;			/* parent beam entry */
	int32_t		size;
	int32_t		cap;
} BeamHeap;

static void
beam_heap_swap(BeamHeap *h, int32_t a, int32_t b)
{
	float		s = h->score[a];
	int32_t		n = h->node[a],
				f = h->from[a];

	h->score[a] = h->score[b];
	h->node[a] = h->node[b];
	h->from[a] = h->from[b];
	h->score[b] = s;
	h->node[b] = n;
	h->from[b] = f;
}

static void
beam_heap_down(BeamHeap *h, int32_t i, int32_t size)
{
	for (;;)
	{
		int32_t		l = 2 * i + 1,
					r = l + 1,
					w = i;

		if (l < size && beam_better(h->score[w], h->node[w], h->score[l], h->node[l]))
			w = l;
		if (r < size && beam_better(h->score[w], h->node[w], h->score[r], h->node[r]))
			w = r;
		if (w == i)
			return;
		beam_heap_swap(h, i, w);
		i = w;
	}
}

/* Offer a candidate; the heap keeps the cap best. */
static inline void
beam_heap_offer(BeamHeap *h, float s, int32_t node, int32_t from)
{
	if (h->size < h->cap)
	{
		int32_t		i = h->size++;

		h->score[i] = s;
		h->node[i] = node;
		h->from[i] = from;
		while (i > 0)
		{
			int32_t		p = (i - 1) / 2;

			if (!beam_better(h->score[p], h->node[p], h->score[i], h->node[i]))
				break;
			beam_heap_swap(h, p, i);
			i = p;
		}
	}
	else if (beam_better(s, node, h->score[0], h->node[0]))
	{
		h->score[0] = s;
		h->node[0] = node;
		h->from[0] = from;
		beam_heap_down(h, 0, h->size);
	}
}

/* Heap sort: afterwards the entries are best first. */
static void
beam_heap_sort(BeamHeap *h)
{
	int32_t		i;

	for (i = h->size - 1; i > 0; i--)
	{
		beam_heap_swap(h, 0, i);
		beam_heap_down(h, 0, i);
	}
}

/* The search's working arrays: two generations of beam entries. */
typedef struct BeamWork
{
	int32_t    *node[2];
	float	   *score[2];
	int32_t    *req[2];
	int32_t    *prefix[2];		/* entries x levels */
	int32_t    *start;			/* n_requests + 1: a request's entries */
	int32_t    *width;			/* n_requests */
	int32_t    *prefix_step;	/* entries x level, for the step */
	float	   *logp;			/* entries x largest codebook */
	BeamHeap	heap;
} BeamWork;

static void
beam_work_free(IsrfEnv *env, BeamWork *w)
{
	int			g;

	for (g = 0; g < 2; g++)
	{
		isrf_free(env, w->node[g]);
		isrf_free(env, w->score[g]);
		isrf_free(env, w->req[g]);
		isrf_free(env, w->prefix[g]);
	}
	isrf_free(env, w->start);
	isrf_free(env, w->width);
	isrf_free(env, w->prefix_step);
	isrf_free(env, w->logp);
	isrf_free(env, w->heap.score);
	isrf_free(env, w->heap.node);
	isrf_free(env, w->heap.from);
}

static IsrfStatus
beam_work_alloc(IsrfEnv *env, const IsrfTrie *t, int32_t n_requests,
				int64_t cap, int32_t max_width, BeamWork *w)
{
	int32_t		maxcb = 1,
				d,
				g;

	for (d = 0; d < t->levels; d++)
		if (t->codebook_sizes[d] > maxcb)
			maxcb = t->codebook_sizes[d];
	cap = cap > 0 ? cap : 1;
	for (g = 0; g < 2; g++)
	{
		w->node[g] = isrf_alloc(env, sizeof(int32_t) * (size_t) cap);
		w->score[g] = isrf_alloc(env, sizeof(float) * (size_t) cap);
		w->req[g] = isrf_alloc(env, sizeof(int32_t) * (size_t) cap);
		w->prefix[g] = isrf_calloc(env, (size_t) cap * t->levels, sizeof(int32_t));
		if (!w->node[g] || !w->score[g] || !w->req[g] || !w->prefix[g])
			return ISRF_ERR_NOMEM;
	}
	w->start = isrf_calloc(env, (size_t) n_requests + 1, sizeof(int32_t));
	w->width = isrf_calloc(env, (size_t) n_requests + 1, sizeof(int32_t));
	w->prefix_step = isrf_calloc(env, (size_t) cap * t->levels, sizeof(int32_t));
	w->logp = isrf_calloc(env, (size_t) cap * maxcb, sizeof(float));
	w->heap.score = isrf_alloc(env, sizeof(float) * ((size_t) max_width + 1));
	w->heap.node = isrf_alloc(env, sizeof(int32_t) * ((size_t) max_width + 1));
	w->heap.from = isrf_alloc(env, sizeof(int32_t) * ((size_t) max_width + 1));
	if (!w->start || !w->width || !w->prefix_step || !w->logp || !w->heap.score ||
		!w->heap.node || !w->heap.from)
		return ISRF_ERR_NOMEM;
	return ISRF_OK;
}

/*
 * One level: ask the step for the next code's log-probabilities of every
 * entry of generation g, and keep each request's best alive continuations
 * in generation 1 - g.  Returns the number of entries kept.
 */
static IsrfStatus
beam_level(const IsrfTrie *t, int32_t level, IsrfBeamStep step,
		   void *arg, int32_t n_requests, const BeamExcl *ex,
		   const int32_t *ex_nodes, const int32_t *ex_counts, BeamWork *w,
		   int g, int32_t *n_out)
{
	int32_t		n_in = w->start[n_requests],
				cb = t->codebook_sizes[level],
				L = t->levels,
				r,
				b,
				i,
				d,
				o = 0;
	const int32_t *node = w->node[g],
			   *req = w->req[g],
			   *prefix = w->prefix[g];
	const float *score = w->score[g];

	for (b = 0; b < n_in; b++)
		for (d = 0; d < level; d++)
			w->prefix_step[(size_t) b * level + d] = prefix[(size_t) b * L + d];
	ISRF_TRY(step(arg, level, n_in, req, w->prefix_step, w->logp));

	for (r = 0; r < n_requests; r++)
	{
		BeamHeap   *h = &w->heap;
		int32_t		first = o;

		h->size = 0;
		h->cap = w->width[r];
		for (b = w->start[r]; b < w->start[r + 1]; b++)
		{
			int32_t		u = node[b],
						v;
			const float *lp = w->logp + (size_t) b * cb;

			for (v = t->first_child[u]; v < t->first_child[u] + t->n_children[u]; v++)
			{
				float		s = score[b] + lp[t->code[v]];

				if (isnan(s))
					s = -INFINITY;
				if (ex[r].n_items > 0 && !beam_alive(t, &ex[r], ex_nodes, ex_counts, v))
					continue;
				beam_heap_offer(h, s, v, b);
			}
		}
		beam_heap_sort(h);
		for (i = 0; i < h->size; i++, o++)
		{
			int32_t		from = h->from[i];

			w->node[1 - g][o] = h->node[i];
			w->score[1 - g][o] = h->score[i];
			w->req[1 - g][o] = r;
			memcpy(w->prefix[1 - g] + (size_t) o * L, prefix + (size_t) from * L,
				   sizeof(int32_t) * (size_t) level);
			w->prefix[1 - g][(size_t) o * L + level] = t->code[h->node[i]];
		}
		w->start[r] = first;
	}
	w->start[n_requests] = o;
	*n_out = o;
	return ISRF_OK;
}

IsrfStatus
isrf_beam_search(IsrfEnv *env, const IsrfTrie *trie, int32_t beam_width,
				 IsrfBeamStep step, void *arg, int32_t n_requests,
				 const IsrfBeamRequest *requests, int32_t *out_items,
				 float *out_scores, int32_t *out_counts)
{
	BeamWork	w;
	BeamExcl   *ex = NULL;
	int32_t    *ex_nodes = NULL,
			   *ex_counts = NULL;
	int64_t		cap = 0,
				out_off = 0;
	int32_t		max_width = 1,
				r,
				i,
				level,
				n_live = 0;
	int			g = 0;
	IsrfStatus	st;

	if (beam_width < 1)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "beam width must be at least 1, not %d", beam_width);
	if (n_requests < 0)
		return isrf_fail(env, ISRF_ERR_INVALID,
						 "beam search: negative request count %d", n_requests);
	for (r = 0; r < n_requests; r++)
		if (requests[r].n_results < 0)
			return isrf_fail(env, ISRF_ERR_INVALID,
							 "beam search: request %d asks for %d results",
							 r, requests[r].n_results);

	memset(&w, 0, sizeof(w));
	ex = isrf_calloc(env, (size_t) n_requests + 1, sizeof(BeamExcl));
	if (ex == NULL)
		return ISRF_ERR_NOMEM;
	st = beam_build_exclusions(env, trie, n_requests, requests, ex, &ex_nodes, &ex_counts);
	if (st != ISRF_OK)
	{
		isrf_free(env, ex);
		return st;
	}

	/* widths: at least N, at most what the request can still reach */
	for (r = 0; r < n_requests; r++)
	{
		int32_t		avail = trie->n_items - ex[r].n_items;
		int32_t		wr = requests[r].n_results > beam_width ? requests[r].n_results : beam_width;

		if (requests[r].n_results == 0 || avail <= 0)
			wr = 0;
		else if (wr > avail)
			wr = avail;
		cap += wr;
		if (wr > max_width)
			max_width = wr;
	}
	if (cap > INT32_MAX)
	{
		st = isrf_fail(env, ISRF_ERR_INVALID, "beam search: batch too wide (%lld entries)",
					   (long long) cap);
		goto done;
	}
	if ((st = beam_work_alloc(env, trie, n_requests, cap, max_width, &w)) != ISRF_OK)
		goto done;

	/* every live request starts at the root with score 0 */
	for (r = 0; r < n_requests; r++)
	{
		int32_t		avail = trie->n_items - ex[r].n_items;
		int32_t		wr = requests[r].n_results > beam_width ? requests[r].n_results : beam_width;

		w.width[r] = (requests[r].n_results == 0 || avail <= 0) ? 0 :
			(wr > avail ? avail : wr);
		w.start[r] = n_live;
		if (w.width[r] > 0)
		{
			w.node[0][n_live] = 0;
			w.score[0][n_live] = 0.0f;
			w.req[0][n_live] = r;
			n_live++;
		}
	}
	w.start[n_requests] = n_live;

	for (level = 0; level < trie->levels && n_live > 0; level++)
	{
		if ((st = beam_level(trie, level, step, arg, n_requests, ex, ex_nodes,
							 ex_counts, &w, g, &n_live)) != ISRF_OK ||
			(st = isrf_poll(env)) != ISRF_OK)
			goto done;
		g = 1 - g;
	}

	for (r = 0; r < n_requests; r++)
	{
		int32_t		want = requests[r].n_results,
					have = w.start[r + 1] - w.start[r];

		if (n_live == 0)
			have = 0;
		if (have > want)
			have = want;
		for (i = 0; i < want; i++)
		{
			if (i < have)
			{
				int32_t		e = w.start[r] + i;

				out_items[out_off + i] =
					trie->leaf_item[w.node[g][e] - trie->level_start[trie->levels]];
				out_scores[out_off + i] = w.score[g][e];
			}
			else
			{
				out_items[out_off + i] = -1;
				out_scores[out_off + i] = -INFINITY;
			}
		}
		out_counts[r] = have;
		out_off += want;
	}

done:
	beam_work_free(env, &w);
	isrf_free(env, ex);
	isrf_free(env, ex_nodes);
	isrf_free(env, ex_counts);
	return st;
}
