/*
 * model_server_internal.h
 *	  Private to the model server's files (model_server.c, the backend side
 *	  and the shared state; model_server_worker.c, the background worker;
 *	  model_server_status.c, its SQL views): the layout of its shared memory,
 *	  the slot words, and the few functions both sides use.  The protocol is
 *	  described at the top of model_server.c.
 */
#ifndef ISRF_PG_SERVER_INTERNAL_H
#define ISRF_PG_SERVER_INTERNAL_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "model_server.h"

#define SERVER_SLOTS 128
#define SERVER_MAX_WORKERS 8

/* bgw_main_arg of a worker */
#define SERVER_WORKER_STATIC 0	/* isrf.server_databases: database by name */
#define SERVER_WORKER_DYNAMIC 1 /* started by a request: ServerStartArg */

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_FILLING,
	SLOT_POSTED,
	SLOT_TAKEN,
	SLOT_DONE,
	SLOT_ABANDONED,
	SLOT_LOST
} SlotState;

/* A slot word: owner pid (32 bits) | generation (24 bits) | state (8 bits). */
#define WORD_MAKE(state, gen, pid) \
	(((uint64) (uint32) (pid) << 32) | ((uint64) ((gen) & 0xFFFFFF) << 8) | (uint64) (state))
#define WORD_STATE(w)	((SlotState) ((w) & 0xFF))
#define WORD_GEN(w)		((uint32) (((w) >> 8) & 0xFFFFFF))
#define WORD_PID(w)		((pid_t) (uint32) ((w) >> 32))
#define WORD_WITH(w, state)	(((w) & ~(uint64) 0xFF) | (uint64) (state))
#define WORD_FREED(w)	WORD_MAKE(SLOT_FREE, WORD_GEN(w), 0)

typedef enum ServerRequestKind
{
	REQUEST_RECOMMEND = 0,
	REQUEST_PRELOAD				/* load the model, answer nothing */
} ServerRequestKind;

typedef struct ServerRequest
{
	ServerRequestKind kind;
	char		model[NAMEDATALEN];
	int32		version;
	TimestampTz created_at;
	int64		user_id;
	int32		k;
	int32		beam_width;		/* the caller's isrf.beam_width */
	int32		var_len;		/* bytes of the variable part in the payload */
} ServerRequest;

typedef enum ServerReplyStatus
{
	REPLY_OK = 0,
	REPLY_ERROR,				/* sqlerrcode and message, raised as they are */
	REPLY_SERVER_EXIT			/* the server exits (device error): message */
} ServerReplyStatus;

typedef struct ServerReply
{
	ServerReplyStatus status;
	int			sqlerrcode;
	char		message[256];
	int32		count;			/* items and scores in the payload */
	bool		cold_start;
} ServerReply;

/*
 * The payload: a request's variable part (the user's history), then the
 * reply's arrays over it; room for the larger of the two.
 */
#define SLOT_REQUEST_BYTES (ISRF_SERVER_MAX_HIST * sizeof(int64))
#define SLOT_REPLY_BYTES (ISRF_SERVER_MAX_K * (sizeof(int64) + sizeof(float)))
#define SLOT_PAYLOAD_BYTES Max(SLOT_REQUEST_BYTES, SLOT_REPLY_BYTES)

typedef struct ServerSlot
{
	pg_atomic_uint64 word;
	pg_atomic_uint32 taker;		/* pid of the server that took it; 0 while posted */
	Oid			dbid;			/* written by the owner before POSTED */
	Latch	   *client_latch;
	TimestampTz posted_at;
	ServerRequest req;
	ServerReply rep;
	uint64		payload[SLOT_PAYLOAD_BYTES / sizeof(uint64)];
} ServerSlot;

typedef enum EntryState
{
	ENTRY_EMPTY = 0,
	ENTRY_STARTING,				/* a worker was asked for; not registered yet */
	ENTRY_RUNNING
} EntryState;

typedef struct ServerWorker
{
	EntryState	state;
	Oid			dbid;
	uint64		token;			/* this incarnation's; never reused */
	pid_t		pid;			/* RUNNING: the worker */
	Latch	   *latch;			/* RUNNING: its latch */
	TimestampTz started_at;
	TimestampTz start_deadline; /* STARTING: given up after this */
	char		device[160];
	char		models[256];
	uint64		requests;
	uint64		batches;
	uint64		errors;
	int32		max_batch;
	double		latency_sum_ms;
	double		latency_max_ms;
} ServerWorker;

typedef struct ServerShared
{
	LWLock	   *lock;			/* protects workers[] and next_token */
	uint64		next_token;
	ServerWorker workers[SERVER_MAX_WORKERS];
	ServerSlot	slots[SERVER_SLOTS];
} ServerShared;

/* What a worker started by a request is told (in bgw_extra). */
typedef struct ServerStartArg
{
	Oid			dbid;
	int32		entry;			/* the entry reserved for it */
	uint64		token;			/* the reservation's token */
} ServerStartArg;

/* The shared state (model_server.c sets it up); NULL unless preloaded. */
extern ServerShared *server_shmem;

/* model_server.c: slot transitions and the reclaiming of orphans */
extern bool server_slot_cas(ServerSlot *s, uint64 expected, uint64 next);
extern void server_slot_wake(ServerSlot *s);
extern bool server_pid_alive(pid_t pid);
extern void server_sweep(void);

/* model_server.c: empty a server entry (server_shmem->lock held) */
extern void server_entry_clear(ServerWorker *w);

#endif							/* ISRF_PG_SERVER_INTERNAL_H */
