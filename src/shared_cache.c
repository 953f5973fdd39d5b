/*
 * shared_cache.c - one copy of a model per server: models in dynamic shared
 * memory, found through a small registry in the main shared memory.
 *
 * With shared_preload_libraries = 'tim4rec' (the registry and its lock are
 * requested at server start) and tim4rec.shared_models = on, the first
 * backend that needs a catalog row copies the model's parameters and lookup
 * tables (vocabulary, counts, popularity order, id -> row table) into a new
 * DSM segment, pins the segment and records it in the registry under the
 * row's identity (database, catalog relation, xmin, ctid).  Every other
 * backend, standbys' included, attaches the segment and builds only a small
 * model header over it (t4r_model_wrap) and its own scratch buffers, so a
 * backend's private memory for a model is a small constant.
 *
 * Lifetime.  A registry slot pins its segment.  When a backend registers a
 * new row for a model name, the other slots of that name are released
 * (unpinned): the old segments disappear when the last backend that still
 * maps one detaches (each backend detaches when its next call sees the new
 * row, or at exit; a terminated backend's mappings go with it).  When a
 * backend finds a model gone from the catalog it releases its slots too.
 *
 * Limits.  At most T4R_SHARED_SLOTS models and tim4rec.shared_memory bytes
 * are shared; a model that does not fit (or a failed segment creation, or
 * too little space in /dev/shm) is loaded privately with a NOTICE.  Rows
 * written by the current transaction are never shared (others cannot see
 * them, and they may roll back).  Without the preload the registry does
 * not exist and every backend loads its models privately, as before.
 */
#include "postgres.h"

#include <sys/statvfs.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/dsm_impl.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"

#include "tim4rec_pg.h"

#define T4R_SHARED_SLOTS 64
#define T4R_SEG_MAGIC 0x74347254	/* "t4rT": with the packed projections */
#define SEG_ALIGN 64

/* a row being loaded by one backend (see t4r_pg_shared_attach_or_claim) */
typedef struct LoadClaim
{
	bool		active;
	bool		failed;			/* its publish failed: load privately */
	T4rSharedKey key;
	int			pid;
	TimestampTz since;
} LoadClaim;

#define T4R_CLAIM_TIMEOUT_MS 60000

typedef struct SharedSlot
{
	bool		in_use;
	T4rSharedKey key;
	char		name[NAMEDATALEN];
	dsm_handle	handle;
	Size		size;
} SharedSlot;

typedef struct SharedRegistry
{
	LWLock	   *lock;
	Size		total;			/* bytes of the registered segments */
	SharedSlot	slots[T4R_SHARED_SLOTS];
	LoadClaim	claims[T4R_SHARED_SLOTS];
} SharedRegistry;

typedef struct SegHeader
{
	uint32		magic;
	T4rSharedKey key;
	t4r_config	cfg;
	int32		V;
	int64		dmin;
	int64		drange;
	size_t		nparams;
	Size		off_params,
				off_ids,
				off_counts,
				off_pop,
				off_direct,
				off_sorted_ids,
				off_sorted_rows,
				off_key_off,	/* text/uuid item ids (T4rKeys): offsets, */
				off_key_data,	/* bytes and hash slots, all relative */
				off_key_slots;
	int32		key_n;
	uint32		key_nslots;
	Size		key_data_len;
	size_t		npacked;
	Size		off_packed;		/* inference's packed projections */
} SegHeader;

bool		tim4rec_shared_models = true;
int			tim4rec_shared_memory_kb = 1024 * 1024;

static SharedRegistry *registry = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shared_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedRegistry)));
	RequestNamedLWLockTranche("tim4rec", 1);
}

static void
shared_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	registry = ShmemInitStruct("tim4rec model registry", sizeof(SharedRegistry), &found);
	if (!found)
	{
		memset(registry, 0, sizeof(SharedRegistry));
		registry->lock = &(GetNamedLWLockTranche("tim4rec"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
t4r_pg_shared_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_startup;
}

bool
t4r_pg_shared_available(void)
{
	return registry != NULL && tim4rec_shared_models;
}

static bool
key_equal(const T4rSharedKey *a, const T4rSharedKey *b)
{
	return a->dbid == b->dbid && a->relid == b->relid && a->xmin == b->xmin &&
		ItemPointerEquals((ItemPointer) &a->tid, (ItemPointer) &b->tid);
}

static void
fill_view(dsm_segment *seg, T4rModelArrays *out)
{
	char	   *base = dsm_segment_address(seg);
	SegHeader  *h = (SegHeader *) base;

	out->seg = seg;
	out->cfg = h->cfg;
	out->V = h->V;
	out->nparams = h->nparams;
	out->params = (t4r_real *) (base + h->off_params);
	out->ids = (int64 *) (base + h->off_ids);
	out->counts = (int64 *) (base + h->off_counts);
	out->pop = (int32 *) (base + h->off_pop);
	out->dmin = h->dmin;
	out->drange = h->drange;
	out->direct = h->drange > 0 ? (int32 *) (base + h->off_direct) : NULL;
	out->sorted_ids = (int64 *) (base + h->off_sorted_ids);
	out->sorted_rows = (int32 *) (base + h->off_sorted_rows);
	out->npacked = h->npacked;
	out->packed = (t4r_real *) (base + h->off_packed);
	memset(&out->keys, 0, sizeof(out->keys));
	out->keys.n = h->key_n;
	if (h->key_n > 0)
	{
		out->keys.nslots = h->key_nslots;
		out->keys.data_len = h->key_data_len;
		out->keys.off = (uint64 *) (base + h->off_key_off);
		out->keys.data = base + h->off_key_data;
		out->keys.slots = (int32 *) (base + h->off_key_slots);
	}
}

/* release slot i (caller holds the lock exclusively) */
static void
release_slot(int i)
{
	SharedSlot *s = &registry->slots[i];

	if (!s->in_use)
		return;
	dsm_unpin_segment(s->handle);
	registry->total -= s->size;
	s->in_use = false;
}

bool
t4r_pg_shared_attach(const T4rSharedKey *key, T4rModelArrays *out)
{
	dsm_handle	h = DSM_HANDLE_INVALID;
	dsm_segment *seg;

	if (!t4r_pg_shared_available())
		return false;
	LWLockAcquire(registry->lock, LW_SHARED);
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
		if (registry->slots[i].in_use && key_equal(&registry->slots[i].key, key))
		{
			h = registry->slots[i].handle;
			break;
		}
	/* attach under the lock: a slot cannot be released meanwhile */
	seg = h != DSM_HANDLE_INVALID ? dsm_attach(h) : NULL;
	LWLockRelease(registry->lock);
	if (seg == NULL)
		return false;
	if (((SegHeader *) dsm_segment_address(seg))->magic != T4R_SEG_MAGIC ||
		!key_equal(&((SegHeader *) dsm_segment_address(seg))->key, key))
	{
		dsm_detach(seg);
		return false;
	}
	dsm_pin_mapping(seg);		/* lives as long as the cache entry, not the query */
	fill_view(seg, out);
	return true;
}

static Size
seg_layout(const T4rModelArrays *src, SegHeader *h)
{
	Size		off = TYPEALIGN(SEG_ALIGN, sizeof(SegHeader));
	int32		V = src->V;

#define PLACE(field, bytes) do { h->field = off; off = TYPEALIGN(SEG_ALIGN, off + (Size) (bytes)); } while (0)
	PLACE(off_params, src->nparams * sizeof(t4r_real));
	PLACE(off_ids, (Size) V * sizeof(int64));
	PLACE(off_counts, (Size) V * sizeof(int64));
	PLACE(off_pop, (Size) V * sizeof(int32));
	PLACE(off_direct, (Size) (src->drange > 0 ? src->drange : 0) * sizeof(int32));
	PLACE(off_sorted_ids, (Size) V * sizeof(int64));
	PLACE(off_sorted_rows, (Size) V * sizeof(int32));
	PLACE(off_key_off, src->keys.n > 0 ? (Size) (src->keys.n + 2) * sizeof(uint64) : 0);
	PLACE(off_key_data, src->keys.n > 0 ? src->keys.data_len : 0);
	PLACE(off_key_slots, src->keys.n > 0 ? (Size) src->keys.nslots * sizeof(int32) : 0);
	PLACE(off_packed, (src->npacked + 1) * sizeof(t4r_real));
#undef PLACE
	return off;
}

/* room in /dev/shm for a POSIX segment of `size` bytes (other types: yes) */
static bool
shm_has_room(Size size)
{
	struct statvfs sv;

	if (dynamic_shared_memory_type != DSM_IMPL_POSIX)
		return true;
	if (statvfs("/dev/shm", &sv) != 0)
		return true;
	return (double) sv.f_bavail * sv.f_frsize > (double) size * 1.1 + 16 * 1024 * 1024;
}

bool
t4r_pg_shared_publish(const T4rSharedKey *key, const char *name, const T4rModelArrays *src,
					  T4rModelArrays *out)
{
	SegHeader	h;
	Size		size;
	dsm_segment *seg;
	char	   *base;
	int			free_slot = -1;
	const char *why = NULL;

	if (!t4r_pg_shared_available())
		return false;
	memset(&h, 0, sizeof(h));
	size = seg_layout(src, &h);

	/* someone else may have published it meanwhile; the older rows of this
	 * model are stale now (this row is the one the catalog serves): release
	 * their slots; room left? */
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		SharedSlot *s = &registry->slots[i];

		if (s->in_use && key_equal(&s->key, key))
			free_slot = -2;
		else if (s->in_use && s->key.dbid == key->dbid && s->key.relid == key->relid &&
				 strcmp(s->name, name) == 0)
			release_slot(i);
	}
	for (int i = 0; i < T4R_SHARED_SLOTS && free_slot == -1; i++)
		if (!registry->slots[i].in_use)
			free_slot = i;
	if (free_slot == -1)
		why = psprintf("all %d shared model slots are in use", T4R_SHARED_SLOTS);
	else if (free_slot >= 0 && registry->total + size > (Size) tim4rec_shared_memory_kb * 1024)
		why = psprintf("tim4rec.shared_memory (%d kB) is full: %zu kB in use, the model needs %zu kB",
					   tim4rec_shared_memory_kb, registry->total >> 10, (size + 1023) >> 10);
	LWLockRelease(registry->lock);
	if (free_slot == -2)
		return t4r_pg_shared_attach(key, out);
	if (why == NULL && !shm_has_room(size))
		why = "/dev/shm has too little free space";
	if (why == NULL)
	{
		seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
		if (seg == NULL)
			why = "the server has no free dynamic shared memory segment";
	}
	if (why != NULL)
	{
		ereport(NOTICE,
				(errmsg("model \"%s\" is loaded into this backend's private memory", name),
				 errdetail("It could not be shared: %s.", why),
				 errhint("Raise tim4rec.shared_memory or drop unused models; recommendations work either way.")));
		return false;
	}

	base = dsm_segment_address(seg);
	h.magic = T4R_SEG_MAGIC;
	h.key = *key;
	h.cfg = src->cfg;
	h.V = src->V;
	h.nparams = src->nparams;
	h.dmin = src->dmin;
	h.drange = src->drange;
	h.key_n = src->keys.n;
	h.key_nslots = src->keys.nslots;
	h.key_data_len = src->keys.data_len;
	h.npacked = src->npacked;
	memcpy(base, &h, sizeof(h));
	memcpy(base + h.off_packed, src->packed, src->npacked * sizeof(t4r_real));
	memcpy(base + h.off_params, src->params, src->nparams * sizeof(t4r_real));
	memcpy(base + h.off_ids, src->ids, (Size) src->V * sizeof(int64));
	memcpy(base + h.off_counts, src->counts, (Size) src->V * sizeof(int64));
	memcpy(base + h.off_pop, src->pop, (Size) src->V * sizeof(int32));
	if (src->drange > 0)
		memcpy(base + h.off_direct, src->direct, (Size) src->drange * sizeof(int32));
	memcpy(base + h.off_sorted_ids, src->sorted_ids, (Size) src->V * sizeof(int64));
	memcpy(base + h.off_sorted_rows, src->sorted_rows, (Size) src->V * sizeof(int32));
	if (src->keys.n > 0)
	{
		memcpy(base + h.off_key_off, src->keys.off, (Size) (src->keys.n + 2) * sizeof(uint64));
		memcpy(base + h.off_key_data, src->keys.data, src->keys.data_len);
		memcpy(base + h.off_key_slots, src->keys.slots, (Size) src->keys.nslots * sizeof(int32));
	}

	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	free_slot = -1;
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		SharedSlot *s = &registry->slots[i];

		if (s->in_use && key_equal(&s->key, key))
		{
			/* lost a race: use the other copy */
			LWLockRelease(registry->lock);
			dsm_detach(seg);
			return t4r_pg_shared_attach(key, out);
		}
	}
	/* the older rows of this model are replaced: release their slots */
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		SharedSlot *s = &registry->slots[i];

		if (s->in_use && s->key.dbid == key->dbid && s->key.relid == key->relid &&
			strcmp(s->name, name) == 0)
			release_slot(i);
	}
	for (int i = 0; i < T4R_SHARED_SLOTS && free_slot < 0; i++)
		if (!registry->slots[i].in_use)
			free_slot = i;
	if (free_slot < 0 || registry->total + size > (Size) tim4rec_shared_memory_kb * 1024)
	{
		LWLockRelease(registry->lock);
		dsm_detach(seg);
		ereport(NOTICE,
				(errmsg("model \"%s\" is loaded into this backend's private memory", name),
				 errdetail("The shared model registry filled up while the model was being copied.")));
		return false;
	}
	dsm_pin_segment(seg);
	registry->slots[free_slot].in_use = true;
	registry->slots[free_slot].key = *key;
	strlcpy(registry->slots[free_slot].name, name, NAMEDATALEN);
	registry->slots[free_slot].handle = dsm_segment_handle(seg);
	registry->slots[free_slot].size = size;
	registry->total += size;
	LWLockRelease(registry->lock);
	dsm_pin_mapping(seg);
	fill_view(seg, out);
	return true;
}

T4rSharedWait
t4r_pg_shared_attach_or_claim(const T4rSharedKey *key, T4rModelArrays *out)
{
	if (!t4r_pg_shared_available())
		return T4R_SHARED_PRIVATE;
	for (;;)
	{
		LoadClaim  *mine = NULL,
				   *spare = NULL;
		bool		ready = false,
					wait = false,
					failed = false;
		TimestampTz now = GetCurrentTimestamp();

		if (t4r_pg_shared_attach(key, out))
			return T4R_SHARED_ATTACHED;
		LWLockAcquire(registry->lock, LW_EXCLUSIVE);
		for (int i = 0; i < T4R_SHARED_SLOTS; i++)
			if (registry->slots[i].in_use && key_equal(&registry->slots[i].key, key))
				ready = true;	/* published since our attach: attach */
		for (int i = 0; i < T4R_SHARED_SLOTS && !ready; i++)
		{
			LoadClaim  *c = &registry->claims[i];

			if (c->active && key_equal(&c->key, key))
				mine = c;
			else if (!spare && (!c->active ||
								(c->failed && TimestampDifferenceExceeds(c->since, now, T4R_CLAIM_TIMEOUT_MS))))
				spare = c;
		}
		if (!ready && mine && mine->failed)
			failed = true;
		else if (!ready && mine && mine->pid != MyProcPid &&
				 BackendPidGetProc(mine->pid) != NULL &&
				 !TimestampDifferenceExceeds(mine->since, now, T4R_CLAIM_TIMEOUT_MS))
			wait = true;		/* a live backend is loading it */
		else if (!ready && (mine || spare))
		{
			/* unclaimed, or its loader is gone or stuck: ours */
			LoadClaim  *c = mine ? mine : spare;

			c->active = true;
			c->failed = false;
			c->key = *key;
			c->pid = MyProcPid;
			c->since = now;
		}
		else if (!ready)
			failed = true;		/* no free claim entry: load privately */
		LWLockRelease(registry->lock);
		if (ready)
			continue;
		if (failed)
			return T4R_SHARED_PRIVATE;
		if (!wait)
			return T4R_SHARED_CLAIMED;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
t4r_pg_shared_unclaim(const T4rSharedKey *key, bool publish_failed)
{
	if (registry == NULL)
		return;
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		LoadClaim  *c = &registry->claims[i];

		if (c->active && c->pid == MyProcPid && key_equal(&c->key, key))
		{
			if (!publish_failed)
				c->active = false;
			else
			{
				/* the waiters load privately (a failed publish would fail
				 * for them too) until the entry is reused */
				c->failed = true;
				c->since = GetCurrentTimestamp();
			}
		}
	}
	LWLockRelease(registry->lock);
}

void
t4r_pg_shared_forget(Oid dbid, Oid relid, const char *name)
{
	if (registry == NULL)
		return;
	LWLockAcquire(registry->lock, LW_EXCLUSIVE);
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		SharedSlot *s = &registry->slots[i];

		if (s->in_use && s->key.dbid == dbid && s->key.relid == relid && strcmp(s->name, name) == 0)
			release_slot(i);
	}
	LWLockRelease(registry->lock);
}

/* SQL: tim4rec_shared_model_list() - what the registry holds (for DBAs and tests) */
PG_FUNCTION_INFO_V1(tim4rec_shared_model_list);
Datum
tim4rec_shared_model_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SharedSlot	copy[T4R_SHARED_SLOTS];

	InitMaterializedSRF(fcinfo, 0);
	if (registry == NULL)
		return (Datum) 0;
	LWLockAcquire(registry->lock, LW_SHARED);
	memcpy(copy, registry->slots, sizeof(copy));
	LWLockRelease(registry->lock);
	for (int i = 0; i < T4R_SHARED_SLOTS; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {0, 0, 0, 0};

		if (!copy[i].in_use || copy[i].key.dbid != MyDatabaseId)
			continue;
		values[0] = CStringGetTextDatum(copy[i].name);
		values[1] = Int64GetDatum((int64) copy[i].size);
		values[2] = Int64GetDatum((int64) copy[i].handle);
		values[3] = Int64GetDatum((int64) copy[i].key.xmin);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
