/* Native fast path of the connection tracker (tracker.py): the common life of a connection in C structs.
 *
 * Principle: tracker.Tracker stays the only complete implementation. This module owns a connection only from
 * the bare SYN that Tracker._slow would give to _new + _open, and only while each packet of it is one that a
 * straight-line handler of Tracker._feed_fast takes (_synack, _hs_ack, the inline hot path, _fin1, _ack_fin),
 * under the same preconditions and with the same effects, timers included (a heap entry (due, serial, key, n)
 * on Tracker._tq with the shared Tracker._serial). Any other packet of it first "materializes" the connection:
 * builds the Conn/Side objects with every field as Python would have them at that point and puts it in
 * Tracker.conns; Python then takes that packet and every later one (Tracker._native_one). Tracker.sweep and
 * Tracker.flush materialize the connections they need (take, take_due), so that rows are still judged and
 * written by Python only. tests/trace/test_trace_native_track.py holds this equal to Tracker(reference=True).
 *
 * Comments name the Python each part mirrors; keep them in step.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* tracker.py constants */
#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACKF 0x10
#define ECE 0x40
#define CWR 0x80
#define BADSUM 0x100
#define TRUNC 0x200
#define FASTMASK (FIN | SYN | RST | ACKF | BADSUM | TRUNC)
#define HALF 0x80000000u
#define BIG (1 << 20)

/* Zeek endpoint states (tracker.INACTIVE ...) */
enum { INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET };

/* RFC 9293 states of Side.state (0: None) */
enum { S_NONE, S_CLOSED, S_LISTEN, S_SYN_SENT, S_SYN_RCVD, S_ESTABLISHED, S_FIN_WAIT_1, S_FIN_WAIT_2,
       S_CLOSE_WAIT, S_CLOSING, S_LAST_ACK, S_TIME_WAIT, S_COUNT };
static const char *STATE_NAMES[S_COUNT] = {NULL, "CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED",
                                           "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK",
                                           "TIME_WAIT"};
static PyObject *state_str[S_COUNT];

/* History bits (tracker._HBIT: letter index i in "SADFRIQ^", bit 1 << (i * 2 + d)) */
#define HB_S(d) (1u << (0 + (d)))
#define HB_A(d) (1u << (2 + (d)))
#define HB_D(d) (1u << (4 + (d)))
#define HB_F(d) (1u << (6 + (d)))

enum { END_NONE, END_ATTEMPT, END_CLOSE, END_INACTIVITY, END_REUSE, END_COUNT };
static const char *END_NAMES[END_COUNT] = {NULL, "attempt", "close", "inactivity", "reuse"};
static PyObject *end_str[END_COUNT];

#define MAXT 16 /* transitions held in C; a handler that could pass it hands the connection over first */
#define MAXH 16 /* history letters */
#define NONE64 (-1) /* None for the optional 32-bit fields held as int64 */

typedef struct {
    int64_t pkts, ipbytes;
    int z, zprev, did_close;
    uint32_t start, nxt, ackseq, top, cend, fin_seq;
    int64_t acc;
    int fin_cnt;
    int64_t hls, hlf, isn, fin_end, last_ack, win, wsyn, wshift; /* NONE64: None */
    int64_t wmax, woffer;
    int fast, fin_pending, syn_pending, state;
    double fin_t, t_last; /* NAN: None (capture times are finite) */
    int has_est;          /* est_at = (est_t, est_i, est_pno) */
    double est_t;
    int64_t est_i, est_pno;
} CSide;

typedef struct {
    PyObject *key; /* owned reference; NULL: free slot */
    Py_hash_t hash;
    int64_t n, first_index, last_index, peer_bytes_at_fin;
    int odir, watch, first_fin; /* first_fin -1: None */
    int gone, end_why;          /* a timer removed it (Tracker.sweep writes it soon); which (END_*) */
    double ts, last, syn_t, syn_last_t, synack_t, ack_t; /* NAN: None */
    double attempt_due, delete_due, idle, due;
    unsigned hseen;
    int nhist;
    char hist[MAXH];
    int ntrans;
    double tr_t[MAXT];
    int64_t tr_pno[MAXT];
    unsigned char tr_d[MAXT], tr_from[MAXT], tr_to[MAXT];
    CSide sd[2]; /* [0] originator, [1] responder */
    int64_t next_free;
} CConn;

/* A Python class with __slots__, as materialize writes it (see there). */
typedef struct {
    Py_ssize_t n;
    Py_ssize_t *off; /* every slot of the class */
    PyObject **tmpl; /* its value in the template (new references) */
    PyTypeObject *type;
} Layout;

typedef struct {
    PyObject_HEAD
    /* No reference to the Tracker (it holds us: a cycle the disabled GC would never free); every method gets
     * it as an argument. */
    PyObject *heappush, *conn_cls;
    Layout conn_lay, side_lay;
    Py_ssize_t *coff, *soff; /* member offsets of the fields materialize writes (CONN_FIELDS, SIDE_FIELDS) */
    CConn *pool;
    int64_t pool_cap, free_head, count;
    int64_t *table; /* open addressing: slot index or -1 */
    int64_t tcap;   /* power of two */
} Fast;

/* interned names */
static PyObject *s_conns, *s_half, *s_recent, *s_timers, *s_count, *s_serial, *s_tq, *s_want, *s_native_one, *s_native_end, *s_fin_pno, *s_finish,
    *s_attempt, *s_close, *s_inactivity, *s_handshake_inactivity, *s_wscale, *s_inactivity_end;

/* ---------------------------------------------------------------------------------------------------------
 * hash table key -> slot (keys compared by value: each batch has its own int objects) */

/* Python's int hash is the value mod 2^61 - 1: consecutive ports give consecutive hashes, which would make
 * long runs under linear probing; a splitmix64 finalizer spreads them. */
static inline uint64_t home_of(Py_hash_t h, uint64_t mask) {
    uint64_t z = (uint64_t)h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (z ^ (z >> 31)) & mask;
}

static int64_t tbl_find(Fast *f, PyObject *key, Py_hash_t h, int *err) {
    uint64_t mask = (uint64_t)f->tcap - 1, i = home_of(h, mask);
    for (;;) {
        int64_t s = f->table[i];
        if (s < 0)
            return -1;
        CConn *c = &f->pool[s];
        if (c->hash == h) {
            int eq = c->key == key ? 1 : PyObject_RichCompareBool(c->key, key, Py_EQ);
            if (eq < 0) {
                *err = 1;
                return -1;
            }
            if (eq)
                return s;
        }
        i = (i + 1) & mask;
    }
}

static void tbl_put(Fast *f, int64_t slot) {
    uint64_t mask = (uint64_t)f->tcap - 1, i = home_of(f->pool[slot].hash, mask);
    while (f->table[i] >= 0)
        i = (i + 1) & mask;
    f->table[i] = slot;
}

static int tbl_grow(Fast *f) {
    int64_t ncap = f->tcap ? f->tcap * 2 : 1024;
    int64_t *nt = PyMem_Malloc((size_t)ncap * sizeof(int64_t));
    if (nt == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int64_t i = 0; i < ncap; i++)
        nt[i] = -1;
    int64_t *old = f->table, ocap = f->tcap;
    f->table = nt;
    f->tcap = ncap;
    for (int64_t i = 0; i < ocap; i++)
        if (old[i] >= 0)
            tbl_put(f, old[i]);
    PyMem_Free(old);
    return 0;
}

/* Linear probing with backward-shift deletion (no tombstones). */
static void tbl_del(Fast *f, int64_t slot) {
    uint64_t mask = (uint64_t)f->tcap - 1, i = home_of(f->pool[slot].hash, mask);
    while (f->table[i] != slot)
        i = (i + 1) & mask;
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        int64_t s = f->table[j];
        if (s < 0)
            break;
        uint64_t home = home_of(f->pool[s].hash, mask);
        /* may s move into the hole at i? yes unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            f->table[i] = s;
            i = j;
        }
    }
    f->table[i] = -1;
}

static int64_t pool_alloc(Fast *f) {
    if (f->free_head < 0) {
        int64_t ncap = f->pool_cap ? f->pool_cap * 2 : 1024;
        CConn *np = PyMem_Realloc(f->pool, (size_t)ncap * sizeof(CConn));
        if (np == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (int64_t i = ncap - 1; i >= f->pool_cap; i--) {
            np[i].key = NULL;
            np[i].next_free = f->free_head;
            f->free_head = i;
        }
        f->pool = np;
        f->pool_cap = ncap;
    }
    if ((f->count + 1) * 2 > f->tcap && tbl_grow(f) < 0)
        return -1;
    int64_t s = f->free_head;
    f->free_head = f->pool[s].next_free;
    return s;
}

static void pool_release(Fast *f, int64_t slot) {
    tbl_del(f, slot);
    CConn *c = &f->pool[slot];
    Py_CLEAR(c->key);
    c->next_free = f->free_head;
    f->free_head = slot;
    f->count--;
}

/* ---------------------------------------------------------------------------------------------------------
 * The rules, as in tracker.py */

static inline int32_t sdiff(uint32_t a, uint32_t b) { return (int32_t)(a - b); } /* _sdiff */

static inline int64_t side_size(const CSide *s) { /* Side.size */
    int64_t n = s->acc;
    if (n)
        n -= 1;
    if (s->fin_cnt && n)
        n -= 1;
    return n;
}

static inline int content_clean(const CSide *x) { /* _content_clean (blocks are always empty here) */
    return x->cend == x->nxt || (x->fin_cnt > 0 && x->fin_seq == x->nxt && (uint32_t)(x->nxt - x->cend) == 1);
}

static inline int acked_within(const CSide *p, uint32_t ack) { /* Tracker._acked_within */
    return (uint32_t)(p->nxt - ack) < HALF && content_clean(p);
}

static inline void add_hist(CConn *c, char letter, unsigned bit) { /* Conn.add_hist */
    if (!(c->hseen & bit)) {
        c->hseen |= bit;
        c->hist[c->nhist++] = letter;
    }
}

static inline void set_state(CConn *c, int d, int to, double t) { /* Conn._set */
    CSide *s = &c->sd[d];
    if (s->state != to) {
        int k = c->ntrans++;
        c->tr_t[k] = t;
        c->tr_d[k] = (unsigned char)d;
        c->tr_from[k] = (unsigned char)(s->state ? s->state : S_CLOSED);
        c->tr_to[k] = (unsigned char)to;
        c->tr_pno[k] = c->last_index;
        s->state = to;
    }
}

static inline void setz(CConn *c, CSide *x, CSide *y, int nw, double inactivity) { /* Tracker._setz */
    if (nw != x->z) {
        if (nw > SYN_ACK_SENT && x->z <= SYN_ACK_SENT && y->z <= SYN_ACK_SENT)
            c->idle = inactivity;
        x->zprev = x->z;
        x->z = nw;
    }
}

static inline void update_ack(CSide *p, uint32_t ack) { /* Tracker._update_ack */
    int32_t delta = sdiff(ack, p->ackseq);
    if (ack == 0 && delta > BIG)
        return;
    if (delta > 0) {
        p->ackseq = ack;
        uint32_t up = ack - p->top;
        if (0 < up && up < HALF) {
            p->acc += up;
            p->top = ack;
        }
    }
}

static inline void refresh_fast(CConn *c) { /* Tracker._refresh_fast */
    CSide *o = &c->sd[0], *r = &c->sd[1];
    if (c->watch || (o->did_close && r->did_close)) {
        o->fast = r->fast = 0;
        return;
    }
    int ok = content_clean(o) && content_clean(r);
    o->fast = ok && (o->z == ESTABLISHED || o->z == PARTIAL) && o->top == o->nxt;
    r->fast = ok && (r->z == ESTABLISHED || r->z == PARTIAL) && r->top == r->nxt;
}

static inline void update_watch(CConn *c) {
    CSide *o = &c->sd[0], *r = &c->sd[1];
    c->watch = o->syn_pending || r->syn_pending || o->fin_pending || r->fin_pending;
}

/* Tracker._confirm_established */
static void confirm_established(CConn *c, int d) {
    CSide *s = &c->sd[d];
    double t = s->est_t;
    int64_t i = s->est_i, pno = s->est_pno;
    s->has_est = 0;
    if (s->state == S_SYN_SENT) {
        int k = c->ntrans;
        for (int j = k; j > i; j--) {
            c->tr_t[j] = c->tr_t[j - 1];
            c->tr_d[j] = c->tr_d[j - 1];
            c->tr_from[j] = c->tr_from[j - 1];
            c->tr_to[j] = c->tr_to[j - 1];
            c->tr_pno[j] = c->tr_pno[j - 1];
        }
        c->tr_t[i] = t;
        c->tr_d[i] = (unsigned char)d;
        c->tr_from[i] = S_SYN_SENT;
        c->tr_to[i] = S_ESTABLISHED;
        c->tr_pno[i] = pno;
        c->ntrans = k + 1;
        s->state = S_ESTABLISHED;
    }
}

/* Tracker._acks with syn = 0 (the only case the C handlers reach) */
static void acks(CConn *c, int d, CSide *p, double ts, uint32_t ack) {
    if (p->syn_pending && p->isn != NONE64 && (uint32_t)(ack - (uint32_t)p->isn - 1) < HALF) {
        p->syn_pending = 0;
        if (d == 0 && isnan(c->ack_t) && !isnan(c->synack_t))
            c->ack_t = ts;
        if (p->state == S_SYN_SENT || p->state == S_SYN_RCVD)
            set_state(c, 1 - d, S_ESTABLISHED, ts);
    }
    if (p->fin_pending && p->fin_end != NONE64 && (uint32_t)(ack - (uint32_t)p->fin_end) < HALF) {
        p->fin_pending = 0;
        if (p->state == S_FIN_WAIT_1)
            set_state(c, 1 - d, S_FIN_WAIT_2, ts);
        else if (p->state == S_CLOSING)
            set_state(c, 1 - d, S_TIME_WAIT, ts);
        else if (p->state == S_LAST_ACK)
            set_state(c, 1 - d, S_CLOSED, ts);
    }
}

/* Tracker._fin_states */
static void fin_states(CConn *c, int d, CSide *s, CSide *p, double ts, uint32_t ack) {
    if (c->first_fin < 0) {
        c->first_fin = d;
        c->peer_bytes_at_fin = side_size(p);
    }
    if (s->state == S_CLOSE_WAIT && p->fin_pending && (uint32_t)(ack - (uint32_t)p->fin_end) >= HALF) {
        for (int i = c->ntrans - 1; i >= 0; i--) {
            if (c->tr_d[i] == d && c->tr_to[i] == S_CLOSE_WAIT) {
                s->state = c->tr_from[i];
                for (int j = i; j + 1 < c->ntrans; j++) {
                    c->tr_t[j] = c->tr_t[j + 1];
                    c->tr_d[j] = c->tr_d[j + 1];
                    c->tr_from[j] = c->tr_from[j + 1];
                    c->tr_to[j] = c->tr_to[j + 1];
                    c->tr_pno[j] = c->tr_pno[j + 1];
                }
                c->ntrans--;
                break;
            }
        }
        set_state(c, d, S_FIN_WAIT_1, ts);
        set_state(c, d, S_CLOSING, ts);
    } else if (s->state == S_ESTABLISHED || s->state == S_SYN_RCVD) {
        set_state(c, d, S_FIN_WAIT_1, ts);
    } else if (s->state == S_CLOSE_WAIT) {
        set_state(c, d, S_LAST_ACK, ts);
    }
    if (p->state == S_ESTABLISHED || p->state == S_SYN_RCVD)
        set_state(c, 1 - d, S_CLOSE_WAIT, ts);
    else if (p->state == S_FIN_WAIT_1)
        set_state(c, 1 - d, S_CLOSING, ts);
    else if (p->state == S_FIN_WAIT_2)
        set_state(c, 1 - d, S_TIME_WAIT, ts);
}

/* ---------------------------------------------------------------------------------------------------------
 * Python-side state touched by the handlers: the shared counters and the timer heap (Tracker._push). */

typedef struct {
    Fast *f;
    PyObject *tracker, *conns, *wscale, *bconn, *keys;
    double attempt, close, inactivity, handshake_inactivity;
} Ctx;

static int attr_incr(PyObject *obj, PyObject *name, int64_t *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    x += 1;
    PyObject *nv = PyLong_FromLongLong(x);
    if (nv == NULL)
        return -1;
    int rc = PyObject_SetAttr(obj, name, nv);
    Py_DECREF(nv);
    *out = x;
    return rc;
}

/* Tracker._push: c.due = min(c.due, due); self._serial += 1; heappush(self._tq, (due, serial, key, n)) */
static int push_timer(Ctx *x, CConn *c, double due) {
    if (due < c->due)
        c->due = due;
    int64_t serial;
    if (attr_incr(x->tracker, s_serial, &serial) < 0)
        return -1;
    PyObject *tq = PyObject_GetAttr(x->tracker, s_tq);
    if (tq == NULL)
        return -1;
    PyObject *item = Py_BuildValue("(dLOL)", due, (long long)serial, c->key, (long long)c->n);
    if (item == NULL) {
        Py_DECREF(tq);
        return -1;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(x->f->heappush, tq, item, NULL);
    Py_DECREF(tq);
    Py_DECREF(item);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int wscale_of(Ctx *x, PyObject *pno, int64_t *out) { /* self._wsc.get(pno, -1) */
    *out = -1;
    if (x->wscale == NULL || PyDict_GET_SIZE(x->wscale) == 0)
        return 0;
    PyObject *v = PyDict_GetItemWithError(x->wscale, pno);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    long long o = PyLong_AsLongLong(v);
    if (o == -1 && PyErr_Occurred())
        return -1;
    *out = o;
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------
 * Materialize: the Conn Python would hold at this point. Every slot of Conn and Side starts as in a template
 * Conn(0, 0, 0, 0.0) made once (fresh empty lists for its lists), so Python's __init__ stays the one place
 * that says the defaults; then the fields the handlers can move are written. Slots are written directly at
 * their member offsets (as the slot descriptors do): Conn.__init__ and ~130 setattr calls were most of the
 * cost of handing over a connection. */

static Py_ssize_t slot_offset(PyTypeObject *t, PyObject *name) {
    PyObject *d = PyObject_GetAttr((PyObject *)t, name);
    if (d == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX)
            off = m->offset;
    }
    Py_DECREF(d);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "_ctrack: %s.%U is not a __slots__ member", t->tp_name, name);
    return off;
}

static int layout_init(Layout *l, PyObject *tmpl) {
    PyTypeObject *t = Py_TYPE(tmpl);
    PyObject *slots = PyObject_GetAttrString((PyObject *)t, "__slots__");
    if (slots == NULL)
        return -1;
    PyObject *seq = PySequence_Tuple(slots);
    Py_DECREF(slots);
    if (seq == NULL)
        return -1;
    l->type = (PyTypeObject *)Py_NewRef(t);
    l->n = PyTuple_GET_SIZE(seq);
    l->off = PyMem_Calloc((size_t)l->n + 1, sizeof(Py_ssize_t));
    l->tmpl = PyMem_Calloc((size_t)l->n + 1, sizeof(PyObject *));
    if (l->off == NULL || l->tmpl == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < l->n; i++) {
        PyObject *name = PyTuple_GET_ITEM(seq, i);
        if ((l->off[i] = slot_offset(t, name)) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        l->tmpl[i] = *(PyObject **)((char *)tmpl + l->off[i]);
        if (l->tmpl[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "_ctrack: the template %s leaves %U unset", t->tp_name, name);
            Py_DECREF(seq);
            return -1;
        }
        Py_INCREF(l->tmpl[i]);
    }
    Py_DECREF(seq);
    return 0;
}

static void layout_clear(Layout *l) {
    for (Py_ssize_t i = 0; i < l->n && l->tmpl; i++)
        Py_XDECREF(l->tmpl[i]);
    PyMem_Free(l->off);
    PyMem_Free(l->tmpl);
    Py_CLEAR(l->type);
    l->n = 0;
    l->off = NULL;
    l->tmpl = NULL;
}

/* A new instance with every slot as in the template (lists fresh and empty, as __init__ makes them). */
static PyObject *layout_new(Layout *l) {
    PyObject *obj = l->type->tp_alloc(l->type, 0);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < l->n; i++) {
        PyObject *v = l->tmpl[i];
        v = PyList_CheckExact(v) ? PyList_New(0) : Py_NewRef(v);
        if (v == NULL) {
            Py_DECREF(obj);
            return NULL;
        }
        *(PyObject **)((char *)obj + l->off[i]) = v;
    }
    return obj;
}

/* The fields written after the template, by member offset. */
#define CONN_FIELDS(X)                                                                                         \
    X(n) X(key) X(odir) X(ts) X(orig_ep) X(resp_ep) X(o) X(r) X(sides) X(last) X(hist) X(hseen) X(watch)       \
        X(transitions) X(trans_pkt) X(syn_t) X(syn_last_t) X(synack_t) X(ack_t) X(first_fin) X(first_index)    \
            X(last_index) X(peer_bytes_at_fin) X(attempt_due) X(delete_due) X(idle) X(due) X(end)
#define SIDE_FIELDS(X)                                                                                         \
    X(pkts) X(ipbytes) X(z) X(zprev) X(did_close) X(start) X(nxt) X(ackseq) X(top) X(acc) X(cend) X(fin_cnt)   \
        X(fin_seq) X(hls) X(hlf) X(fast) X(isn) X(fin_end) X(fin_t) X(fin_pending) X(syn_pending) X(state)    \
            X(est_at) X(t_last) X(last_ack) X(win) X(wmax) X(wsyn) X(woffer) X(wshift)
#define X_ENUM_C(f) CF_##f,
#define X_ENUM_S(f) SF_##f,
#define X_NAME(f) #f,
enum { CONN_FIELDS(X_ENUM_C) CF_COUNT };
enum { SIDE_FIELDS(X_ENUM_S) SF_COUNT };
static const char *CF_NAMES[CF_COUNT] = {CONN_FIELDS(X_NAME)};
static const char *SF_NAMES[SF_COUNT] = {SIDE_FIELDS(X_NAME)};

static int fields_init(PyTypeObject *t, const char **names, int count, Py_ssize_t *out) {
    for (int i = 0; i < count; i++) {
        PyObject *name = PyUnicode_InternFromString(names[i]);
        if (name == NULL)
            return -1;
        out[i] = slot_offset(t, name);
        Py_DECREF(name);
        if (out[i] < 0)
            return -1;
    }
    return 0;
}

static PyObject *opt_i(int64_t v) { return v == NONE64 ? Py_NewRef(Py_None) : PyLong_FromLongLong(v); }
static PyObject *opt_f(double v) { return isnan(v) ? Py_NewRef(Py_None) : PyFloat_FromDouble(v); }
static PyObject *st_obj(int st) { return Py_NewRef(st ? state_str[st] : Py_None); }

/* obj.<slot at off> = v (a new reference, stolen); a NULL v (a failed allocation) only marks *bad. */
static inline void put(PyObject *obj, Py_ssize_t off, PyObject *v, int *bad) {
    if (v == NULL) {
        *bad = 1;
        return;
    }
    PyObject **p = (PyObject **)((char *)obj + off);
    Py_XSETREF(*p, v);
}

static void fill_side(Fast *f, PyObject *so, const CSide *s, int *bad) {
    const Py_ssize_t *o = f->soff;
    put(so, o[SF_pkts], PyLong_FromLongLong(s->pkts), bad);
    put(so, o[SF_ipbytes], PyLong_FromLongLong(s->ipbytes), bad);
    put(so, o[SF_z], PyLong_FromLong(s->z), bad);
    put(so, o[SF_zprev], PyLong_FromLong(s->zprev), bad);
    put(so, o[SF_did_close], PyBool_FromLong(s->did_close), bad);
    put(so, o[SF_start], PyLong_FromUnsignedLong(s->start), bad);
    put(so, o[SF_nxt], PyLong_FromUnsignedLong(s->nxt), bad);
    put(so, o[SF_ackseq], PyLong_FromUnsignedLong(s->ackseq), bad);
    put(so, o[SF_top], PyLong_FromUnsignedLong(s->top), bad);
    put(so, o[SF_acc], PyLong_FromLongLong(s->acc), bad);
    put(so, o[SF_cend], PyLong_FromUnsignedLong(s->cend), bad);
    put(so, o[SF_fin_cnt], PyLong_FromLong(s->fin_cnt), bad);
    put(so, o[SF_fin_seq], PyLong_FromUnsignedLong(s->fin_seq), bad);
    put(so, o[SF_hls], opt_i(s->hls), bad);
    put(so, o[SF_hlf], opt_i(s->hlf), bad);
    put(so, o[SF_fast], PyBool_FromLong(s->fast), bad);
    put(so, o[SF_isn], opt_i(s->isn), bad);
    put(so, o[SF_fin_end], opt_i(s->fin_end), bad);
    put(so, o[SF_fin_t], opt_f(s->fin_t), bad);
    put(so, o[SF_fin_pending], PyBool_FromLong(s->fin_pending), bad);
    put(so, o[SF_syn_pending], PyBool_FromLong(s->syn_pending), bad);
    put(so, o[SF_state], st_obj(s->state), bad);
    put(so, o[SF_t_last], opt_f(s->t_last), bad);
    put(so, o[SF_last_ack], opt_i(s->last_ack), bad);
    put(so, o[SF_win], opt_i(s->win), bad);
    put(so, o[SF_wmax], PyLong_FromLongLong(s->wmax), bad);
    put(so, o[SF_wsyn], opt_i(s->wsyn), bad);
    put(so, o[SF_woffer], PyLong_FromLongLong(s->woffer), bad);
    put(so, o[SF_wshift], opt_i(s->wshift), bad);
    put(so, o[SF_est_at],
        s->has_est ? Py_BuildValue("(dLL)", s->est_t, (long long)s->est_i, (long long)s->est_pno)
                   : Py_NewRef(Py_None),
        bad);
}

static PyObject *build_conn(Fast *f, CConn *c) {
    PyObject *so = layout_new(&f->side_lay), *ro = layout_new(&f->side_lay), *conn = layout_new(&f->conn_lay);
    if (so == NULL || ro == NULL || conn == NULL) {
        Py_XDECREF(so);
        Py_XDECREF(ro);
        Py_XDECREF(conn);
        return NULL;
    }
    int bad = 0;
    const Py_ssize_t *o = f->coff;
    put(conn, o[CF_sides], PyTuple_Pack(2, so, ro), &bad);
    put(conn, o[CF_o], so, &bad);
    put(conn, o[CF_r], ro, &bad);
    /* Conn.__init__(n, key, odir, ts): orig_ep / resp_ep from the key's halves */
    PyObject *m64 = PyLong_FromUnsignedLongLong(UINT64_MAX), *sh = PyLong_FromLong(64);
    PyObject *hi = m64 ? PyNumber_And(c->key, m64) : NULL, *lo = sh ? PyNumber_Rshift(c->key, sh) : NULL;
    Py_XDECREF(m64);
    Py_XDECREF(sh);
    if (hi == NULL || lo == NULL) {
        Py_XDECREF(hi);
        Py_XDECREF(lo);
        Py_DECREF(conn);
        return NULL;
    }
    put(conn, o[CF_orig_ep], c->odir ? hi : lo, &bad);
    put(conn, o[CF_resp_ep], c->odir ? lo : hi, &bad);
    put(conn, o[CF_n], PyLong_FromLongLong(c->n), &bad);
    put(conn, o[CF_key], Py_NewRef(c->key), &bad);
    put(conn, o[CF_odir], PyLong_FromLong(c->odir), &bad);
    put(conn, o[CF_ts], PyFloat_FromDouble(c->ts), &bad);
    PyObject *hist = PyList_New(c->nhist);
    if (hist != NULL)
        for (int i = 0; i < c->nhist; i++) {
            PyObject *ch = PyUnicode_FromOrdinal((unsigned char)c->hist[i]);
            if (ch == NULL) {
                Py_CLEAR(hist);
                break;
            }
            PyList_SET_ITEM(hist, i, ch);
        }
    put(conn, o[CF_hist], hist, &bad);
    PyObject *trans = PyList_New(c->ntrans), *tpk = PyList_New(c->ntrans);
    for (int i = 0; trans != NULL && tpk != NULL && i < c->ntrans; i++) {
        PyObject *t = Py_BuildValue("(diOO)", c->tr_t[i], (int)c->tr_d[i], state_str[c->tr_from[i]],
                                    state_str[c->tr_to[i]]);
        PyObject *p = PyLong_FromLongLong(c->tr_pno[i]);
        if (t == NULL || p == NULL) {
            Py_XDECREF(t);
            Py_XDECREF(p);
            Py_CLEAR(trans);
            break;
        }
        PyList_SET_ITEM(trans, i, t);
        PyList_SET_ITEM(tpk, i, p);
    }
    if (trans == NULL)
        Py_CLEAR(tpk);
    put(conn, o[CF_transitions], trans, &bad);
    put(conn, o[CF_trans_pkt], tpk, &bad);
    put(conn, o[CF_last], PyFloat_FromDouble(c->last), &bad);
    put(conn, o[CF_hseen], PyLong_FromUnsignedLong(c->hseen), &bad);
    put(conn, o[CF_watch], PyBool_FromLong(c->watch), &bad);
    put(conn, o[CF_syn_t], opt_f(c->syn_t), &bad);
    put(conn, o[CF_syn_last_t], opt_f(c->syn_last_t), &bad);
    put(conn, o[CF_synack_t], opt_f(c->synack_t), &bad);
    put(conn, o[CF_ack_t], opt_f(c->ack_t), &bad);
    put(conn, o[CF_first_fin], c->first_fin < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(c->first_fin), &bad);
    put(conn, o[CF_first_index], PyLong_FromLongLong(c->first_index), &bad);
    put(conn, o[CF_last_index], PyLong_FromLongLong(c->last_index), &bad);
    put(conn, o[CF_peer_bytes_at_fin], PyLong_FromLongLong(c->peer_bytes_at_fin), &bad);
    put(conn, o[CF_attempt_due], PyFloat_FromDouble(c->attempt_due), &bad);
    put(conn, o[CF_delete_due], PyFloat_FromDouble(c->delete_due), &bad);
    put(conn, o[CF_idle], PyFloat_FromDouble(c->idle), &bad);
    put(conn, o[CF_due], PyFloat_FromDouble(c->due), &bad);
    if (c->end_why)
        put(conn, o[CF_end], Py_NewRef(end_str[c->end_why]), &bad);
    fill_side(f, so, &c->sd[0], &bad);
    fill_side(f, ro, &c->sd[1], &bad);
    if (bad) {
        Py_DECREF(conn);
        return NULL;
    }
    return conn;
}

/* Hand connection `slot` to Python: Tracker.conns[key] = its Conn; returns a new reference to it. */
static PyObject *materialize(Fast *f, PyObject *tracker, int64_t slot) {
    CConn *c = &f->pool[slot];
    PyObject *conn = build_conn(f, c);
    if (conn == NULL)
        return NULL;
    PyObject *conns = PyObject_GetAttr(tracker, s_conns);
    if (conns == NULL || PyDict_SetItem(conns, c->key, conn) < 0) {
        Py_XDECREF(conns);
        Py_DECREF(conn);
        return NULL;
    }
    Py_DECREF(conns);
    pool_release(f, slot);
    return conn;
}

/* ---------------------------------------------------------------------------------------------------------
 * The straight-line handlers. Each checks its precondition first and returns 0 without touching anything
 * when it does not hold (the caller then hands the packet to Python), 1 when it took the packet, -1 on error. */

typedef struct {
    double ts;
    int d;
    uint32_t seq, ack;
    int fl;
    int64_t win, pl, ipl, pno;
    PyObject *pno_obj;
} Pkt;

/* Tracker._new (bare SYN, not flipped, nothing continued) + Tracker._open */
static int c_open(Ctx *x, CConn *c, PyObject *key, Py_hash_t h, int64_t n, int db, const Pkt *k,
                  int64_t woffer) {
    memset(c, 0, sizeof(*c));
    c->key = Py_NewRef(key);
    c->hash = h;
    c->n = n;
    c->odir = db;
    c->ts = c->last = k->ts;
    c->first_fin = -1;
    c->first_index = k->pno;
    c->syn_t = c->syn_last_t = c->synack_t = c->ack_t = NAN;
    c->attempt_due = c->delete_due = INFINITY;
    for (int d = 0; d < 2; d++) {
        CSide *s = &c->sd[d];
        s->hls = s->hlf = s->isn = s->fin_end = s->last_ack = s->win = s->wsyn = s->wshift = NONE64;
        s->woffer = -2;
        s->fin_t = s->t_last = NAN;
    }
    c->sd[0].state = S_CLOSED; /* _new: the SYN's sender CLOSED, the other LISTEN */
    c->sd[1].state = S_LISTEN;
    c->idle = x->handshake_inactivity;
    c->due = c->idle ? k->ts + c->idle : INFINITY;
    /* _open */
    CSide *s = &c->sd[0];
    c->last_index = k->pno;
    s->pkts = 1;
    s->ipbytes = k->ipl;
    uint32_t end = k->seq + 1;
    s->start = s->ackseq = k->seq;
    s->nxt = s->top = s->cend = end;
    s->acc = 1;
    c->hseen |= HB_S(0);
    c->hist[c->nhist++] = 'S';
    s->hls = 0;
    /* win == 0 never gets here (the caller leaves that to Python) */
    c->last = k->ts;
    s->wsyn = k->win;
    s->woffer = woffer;
    s->zprev = INACTIVE;
    s->z = SYN_SENT;
    if (x->attempt) {
        c->attempt_due = k->ts + x->attempt;
        if (push_timer(x, c, c->attempt_due) < 0)
            return -1;
    }
    s->t_last = k->ts;
    s->isn = k->seq;
    c->syn_t = c->syn_last_t = k->ts;
    c->tr_t[0] = k->ts;
    c->tr_d[0] = 0;
    c->tr_from[0] = S_CLOSED;
    c->tr_to[0] = S_SYN_SENT;
    c->tr_pno[0] = k->pno;
    c->ntrans = 1;
    s->state = S_SYN_SENT;
    s->syn_pending = 1;
    c->watch = 1;
    s->fast = c->sd[1].fast = 0;
    return 1;
}

/* Tracker._synack */
static int c_synack(Ctx *x, CConn *c, const Pkt *k) {
    CSide *s = &c->sd[1], *p = &c->sd[0];
    uint32_t ack = k->ack;
    if (!(!k->pl && k->win && s->z == INACTIVE && s->pkts == 0 && s->isn == NONE64 && p->z == SYN_SENT &&
          p->state == S_SYN_SENT && s->state == S_LISTEN && p->syn_pending && p->isn != NONE64 &&
          ack == (uint32_t)(p->isn + 1) && p->ackseq == (uint32_t)p->isn && p->top == ack && p->cend == ack &&
          !p->fin_cnt && !p->fin_pending && !p->did_close && isnan(c->synack_t)))
        return 0;
    int64_t offer;
    if (wscale_of(x, k->pno_obj, &offer) < 0)
        return -1;
    c->last_index = k->pno;
    s->pkts = 1;
    s->ipbytes = k->ipl;
    uint32_t end = k->seq + 1;
    s->start = s->ackseq = k->seq;
    s->nxt = s->top = s->cend = end;
    s->acc = 1;
    c->hseen |= HB_S(1);
    c->hist[c->nhist++] = 'h';
    s->hls = 0;
    c->last = k->ts;
    /* _syn_window(s, p, SYN|ACK, win, pno) */
    s->wsyn = k->win;
    s->woffer = offer;
    if (p->woffer != -2) {
        if (offer >= 0 && p->woffer >= 0) {
            s->wshift = offer < 14 ? offer : 14;
            p->wshift = p->woffer < 14 ? p->woffer : 14;
        } else {
            s->wshift = p->wshift = 0;
        }
    }
    p->ackseq = ack;
    setz(c, p, s, ESTABLISHED, x->inactivity);
    setz(c, s, p, ESTABLISHED, x->inactivity);
    s->t_last = k->ts;
    s->isn = k->seq;
    c->synack_t = k->ts;
    set_state(c, 1, S_SYN_RCVD, k->ts);
    s->syn_pending = 1;
    p->syn_pending = 0;
    p->has_est = 1;
    p->est_t = k->ts;
    p->est_i = c->ntrans;
    p->est_pno = c->last_index;
    s->last_ack = ack;
    c->watch = 1;
    s->fast = p->fast = 0;
    return 1;
}

/* Tracker._hs_ack */
static int c_hs_ack(Ctx *x, CConn *c, const Pkt *k) {
    CSide *s = &c->sd[0], *p = &c->sd[1];
    uint32_t ack = k->ack;
    if (!(!k->pl && k->win && c->watch && s->z == ESTABLISHED && p->z == ESTABLISHED && s->has_est &&
          k->seq == s->nxt && s->top == s->nxt && s->cend == s->nxt && !s->fin_pending && p->syn_pending &&
          p->isn != NONE64 && ack == (uint32_t)(p->isn + 1) && p->ackseq == (uint32_t)p->isn && p->nxt == ack &&
          p->top == ack && p->cend == ack && !p->fin_cnt && p->state == S_SYN_RCVD && !s->syn_pending &&
          !s->did_close && !p->did_close))
        return 0;
    c->last_index = k->pno;
    s->pkts += 1;
    s->ipbytes += k->ipl;
    add_hist(c, 'A', HB_A(0));
    c->last = k->ts;
    s->win = k->win;
    if (k->win > s->wmax)
        s->wmax = k->win;
    p->ackseq = ack;
    s->t_last = k->ts;
    confirm_established(c, 0);
    p->syn_pending = 0;
    if (isnan(c->ack_t) && !isnan(c->synack_t))
        c->ack_t = k->ts;
    set_state(c, 1, S_ESTABLISHED, k->ts);
    s->last_ack = ack;
    c->watch = 0;
    s->fast = p->fast = 1;
    return 1;
}

/* Tracker._fin1 */
static int c_fin1(Ctx *x, CConn *c, const Pkt *k) {
    int d = k->d;
    CSide *s = &c->sd[d], *p = &c->sd[1 - d];
    uint32_t seq = k->seq, ack = k->ack;
    if (!(k->win && s->z == ESTABLISHED && !s->fin_cnt && !s->did_close && seq == s->nxt && s->top == s->nxt &&
          s->cend == s->nxt && !s->has_est && s->fin_end == NONE64 && (p->z == ESTABLISHED || p->z == CLOSED) &&
          acked_within(p, ack)))
        return 0;
    c->last_index = k->pno;
    s->pkts += 1;
    s->ipbytes += k->ipl;
    uint32_t pl = (uint32_t)k->pl;
    uint32_t end = seq + pl + 1;
    int64_t v = (uint32_t)(seq - s->start + pl);
    if (!(c->hseen & HB_F(d))) {
        c->hseen |= HB_F(d);
        c->hist[c->nhist++] = d ? 'f' : 'F';
    } else if (v != s->hlf) {
        c->hist[c->nhist++] = d ? 'f' : 'F';
    }
    s->hlf = v;
    c->last = k->ts;
    s->win = k->win;
    if (k->win > s->wmax)
        s->wmax = k->win;
    s->fin_cnt = 1;
    s->fin_seq = end;
    update_ack(p, ack);
    s->nxt = s->top = end;
    s->acc += k->pl + 1;
    setz(c, s, p, CLOSED, x->inactivity);
    if (pl)
        s->cend = seq + pl;
    /* _closed(c, s, p) */
    if (!s->did_close) {
        s->did_close = 1;
        if (s->z == RESET || p->did_close || p->z == INACTIVE) {
            c->attempt_due = INFINITY;
            c->delete_due = c->last + x->close;
            if (push_timer(x, c, c->delete_due) < 0)
                return -1;
        }
    }
    s->t_last = k->ts;
    s->fin_end = end;
    s->fin_t = k->ts;
    s->fin_pending = 1;
    acks(c, d, p, k->ts, ack);
    fin_states(c, d, s, p, k->ts, ack);
    s->last_ack = ack;
    update_watch(c);
    refresh_fast(c);
    return 1;
}

/* Tracker._ack_fin */
static int c_ack_fin(Ctx *x, CConn *c, const Pkt *k) {
    int d = k->d;
    CSide *s = &c->sd[d], *p = &c->sd[1 - d];
    uint32_t ack = k->ack;
    if (!(!k->pl && k->win && (s->z == ESTABLISHED || s->z == CLOSED) && k->seq == s->nxt && !s->has_est &&
          !s->syn_pending && !p->syn_pending && (p->z == ESTABLISHED || p->z == CLOSED) && content_clean(s) &&
          acked_within(p, ack)))
        return 0;
    c->last_index = k->pno;
    s->pkts += 1;
    s->ipbytes += k->ipl;
    add_hist(c, d ? 'a' : 'A', HB_A(d));
    if (!(c->sd[0].did_close && c->sd[1].did_close))
        c->last = k->ts;
    s->win = k->win;
    if (k->win > s->wmax)
        s->wmax = k->win;
    update_ack(p, ack);
    s->t_last = k->ts;
    acks(c, d, p, k->ts, ack);
    s->last_ack = ack;
    update_watch(c);
    refresh_fast(c);
    return 1;
}

/* The inline hot path of Tracker._feed_fast, only for the packets it handles without a helper (in-order data
 * or pure ACK, nonzero window, acknowledging nothing beyond the peer's LastSeq); 0 otherwise, untouched. */
static int c_hot(CConn *c, const Pkt *k) {
    int d = k->d;
    CSide *s = &c->sd[d], *p = &c->sd[1 - d];
    if (k->win == 0 || k->seq != s->nxt) /* _zero_fast, _data_fast, _odd_fast */
        return 0;
    uint32_t beyond = k->ack - p->nxt;
    if (0 < beyond && beyond < HALF) /* _acked_beyond */
        return 0;
    c->last = s->t_last = k->ts;
    c->last_index = k->pno;
    s->pkts += 1;
    s->ipbytes += k->ipl;
    if (k->pl)
        add_hist(c, d ? 'd' : 'D', HB_D(d));
    else
        add_hist(c, d ? 'a' : 'A', HB_A(d));
    s->win = k->win;
    if (k->win > s->wmax)
        s->wmax = k->win;
    /* s.win0 is always False for a connection held here */
    if (k->pl) {
        s->nxt = s->top = s->cend = k->seq + (uint32_t)k->pl;
        s->acc += k->pl;
    }
    s->last_ack = k->ack;
    return 1;
}

/* One packet of a connection held here: the dispatch of Tracker._feed_fast. */
static int c_packet(Ctx *x, CConn *c, Pkt *k, int db) {
    if (k->ts >= c->due)
        return 0;
    if (c->ntrans + 6 > MAXT || c->nhist + 3 > MAXH)
        return 0; /* a long story: Python keeps it (never in practice) */
    k->d = db ^ c->odir;
    int fl = k->fl;
    if ((fl & FASTMASK) != ACKF) {
        if (fl == (SYN | ACKF))
            return k->d == 1 ? c_synack(x, c, k) : 0;
        if ((fl & ~(PSH | ECE | CWR)) == (FIN | ACKF))
            return c_fin1(x, c, k);
        return 0;
    }
    CSide *s = &c->sd[k->d];
    if (!s->fast) {
        if (fl != ACKF)
            return 0;
        int r = 0;
        if (k->d == 0)
            r = c_hs_ack(x, c, k);
        if (r == 0)
            r = c_ack_fin(x, c, k);
        return r;
    }
    return c_hot(c, k);
}

/* ---------------------------------------------------------------------------------------------------------
 * Fast.feed(dec, bconn, compact_after, created): the batch loop. */

static int get_ctx(Fast *f, PyObject *tracker, Ctx *x) {
    x->f = f;
    x->tracker = tracker;
    PyObject *tm = PyObject_GetAttr(tracker, s_timers);
    if (tm == NULL)
        return -1;
    PyObject *names[4] = {s_attempt, s_close, s_inactivity, s_handshake_inactivity};
    double *dst[4] = {&x->attempt, &x->close, &x->inactivity, &x->handshake_inactivity};
    for (int i = 0; i < 4; i++) {
        PyObject *v = PyObject_GetAttr(tm, names[i]);
        if (v == NULL) {
            Py_DECREF(tm);
            return -1;
        }
        *dst[i] = PyFloat_AsDouble(v);
        Py_DECREF(v);
        if (*dst[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(tm);
            return -1;
        }
    }
    Py_DECREF(tm);
    return 0;
}

/* May a bare SYN of a key Python does not hold start a connection here? Mirrors the route Tracker._slow takes
 * to _new + _open: not compacting (C-held connections count as open ones), the key not compact, not the
 * wanted connection, and no earlier row that _continues would carry over (when there is an earlier row that
 * it does not continue, its recent entry is popped here, as _new does). 1 yes (*n_out: the connection number),
 * 0 no (Python takes the packet), -1 error. */
static int may_open(Ctx *x, PyObject *key, int db, const Pkt *k, int64_t compact_after, int64_t *n_out) {
    PyObject *t = x->tracker;
    if ((int64_t)PyDict_GET_SIZE(x->conns) + x->f->count >= compact_after)
        return 0;
    PyObject *half = PyObject_GetAttr(t, s_half);
    if (half == NULL)
        return -1;
    int in_half = PyDict_GET_SIZE(half) ? PyDict_Contains(half, key) : 0;
    Py_DECREF(half);
    if (in_half)
        return in_half < 0 ? -1 : 0;
    PyObject *cnt = PyObject_GetAttr(t, s_count);
    if (cnt == NULL)
        return -1;
    long long n = PyLong_AsLongLong(cnt);
    Py_DECREF(cnt);
    if (n == -1 && PyErr_Occurred())
        return -1;
    n += 1;
    PyObject *want = PyObject_GetAttr(t, s_want);
    if (want == NULL)
        return -1;
    int wanted = 0;
    if (want != Py_None) {
        long long w = PyLong_AsLongLong(want);
        if (w == -1 && PyErr_Occurred())
            PyErr_Clear(); /* not an int: never equal to a connection number */
        else
            wanted = w == n;
    }
    Py_DECREF(want);
    if (wanted)
        return 0; /* _new keeps a reference in Tracker.wanted: leave it to Python */
    *n_out = n;
    PyObject *recent = PyObject_GetAttr(t, s_recent);
    if (recent == NULL)
        return -1;
    PyObject *prev = PyDict_GetItemWithError(recent, key);
    if (prev == NULL) {
        Py_DECREF(recent);
        return PyErr_Occurred() ? -1 : 1;
    }
    /* Tracker._continues for a bare SYN (ds = 0: the SYN's sender is the originator, c.orig_ep): it carries
     * over when the earlier row ended by inactivity, or when this is the same SYN again from the host that
     * row left in SYN_SENT. Anything unexpected: Python decides. */
    int rc = 0;
    PyObject *hi = NULL, *lo = NULL, *m64 = NULL, *sh = NULL;
    if (!PyTuple_Check(prev) || PyTuple_GET_SIZE(prev) != 12 || !PyUnicode_Check(PyTuple_GET_ITEM(prev, 10)))
        goto out;
    if (PyUnicode_Compare(PyTuple_GET_ITEM(prev, 10), s_inactivity_end) == 0)
        goto out;
    m64 = PyLong_FromUnsignedLongLong(UINT64_MAX);
    sh = PyLong_FromLong(64);
    if (m64 == NULL || sh == NULL)
        goto err;
    hi = PyNumber_And(key, m64);
    lo = PyNumber_Rshift(key, sh);
    if (hi == NULL || lo == NULL)
        goto err;
    PyObject *fep = db ? hi : lo, *oep = PyTuple_GET_ITEM(prev, 1);
    int o_is_hi = PyObject_RichCompareBool(oep, hi, Py_EQ);
    if (o_is_hi < 0)
        goto err;
    PyObject *other = o_is_hi ? lo : hi;
    int is_other = PyObject_RichCompareBool(fep, other, Py_EQ);
    int is_orig = PyObject_RichCompareBool(fep, oep, Py_EQ);
    if (is_other < 0 || is_orig < 0)
        goto err;
    int same_syn = 0;
    if (is_other || is_orig) {
        int base = is_other ? 6 : 2; /* left = {orig_ep: orig, other: resp}: the later entry wins */
        PyObject *state = PyTuple_GET_ITEM(prev, base), *isn = PyTuple_GET_ITEM(prev, base + 1);
        if (isn != Py_None && state != Py_None) {
            PyObject *sq = PyLong_FromUnsignedLong(k->seq);
            if (sq == NULL)
                goto err;
            int eq = PyObject_RichCompareBool(sq, isn, Py_EQ);
            Py_DECREF(sq);
            int st = PyObject_RichCompareBool(state, state_str[S_SYN_SENT], Py_EQ);
            if (eq < 0 || st < 0)
                goto err;
            same_syn = eq && st;
        }
    }
    if (same_syn)
        goto out;
    if (PyDict_DelItem(recent, key) < 0) /* _new's recent.pop: this row does not continue it */
        goto err;
    rc = 1;
    goto out;
err:
    rc = -1;
out:
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(m64);
    Py_XDECREF(sh);
    Py_DECREF(recent);
    return rc;
}

static int py_one(Ctx *x, Py_ssize_t i) { /* Tracker._native_one(i): Python's own path for packet i */
    PyObject *iv = PyLong_FromSsize_t(i);
    if (iv == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodOneArg(x->tracker, s_native_one, iv);
    Py_DECREF(iv);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *get_list(PyObject *dec, const char *name, Py_ssize_t n) {
    PyObject *v = PyObject_GetAttrString(dec, name);
    if (v == NULL)
        return NULL;
    if (!PyList_Check(v) || (n >= 0 && PyList_GET_SIZE(v) != n)) {
        PyErr_Format(PyExc_TypeError, "Fast.feed: dec.%s must be a list of the batch's length", name);
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

#define NCOL 10
static const char *COLS[NCOL] = {"ts", "fidx", "dirbit", "seq", "ack", "flags", "win", "plen", "iplen", "index"};

static int c_expired(CConn *c, double now);
static int c_is_reuse(const CConn *c, int d, uint32_t seq);

static PyObject *Fast_feed(Fast *f, PyObject *args) {
    PyObject *tracker, *dec, *bconn, *created;
    long long compact_after;
    if (!PyArg_ParseTuple(args, "OOO!LO", &tracker, &dec, &PyList_Type, &bconn, &compact_after, &created))
        return NULL;
    Ctx x;
    memset(&x, 0, sizeof(x));
    PyObject *col[NCOL] = {NULL};
    int64_t *cc = NULL;
    PyObject *result = NULL;
    if (get_ctx(f, tracker, &x) < 0)
        return NULL;
    x.conns = PyObject_GetAttr(tracker, s_conns);
    x.wscale = PyObject_GetAttr(dec, s_wscale);
    x.keys = get_list(dec, "keys", PyList_GET_SIZE(bconn));
    if (x.conns == NULL || x.wscale == NULL || x.keys == NULL)
        goto done;
    if (!PyDict_Check(x.conns) || !PyDict_Check(x.wscale)) {
        PyErr_SetString(PyExc_TypeError, "Fast.feed: tracker.conns and dec.wscale must be dicts");
        goto done;
    }
    col[0] = get_list(dec, COLS[0], -1);
    if (col[0] == NULL)
        goto done;
    Py_ssize_t n = PyList_GET_SIZE(col[0]);
    for (int j = 1; j < NCOL; j++)
        if ((col[j] = get_list(dec, COLS[j], n)) == NULL)
            goto done;
    Py_ssize_t nflows = PyList_GET_SIZE(x.keys);
    cc = PyMem_Malloc((size_t)(nflows ? nflows : 1) * sizeof(int64_t));
    if (cc == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < nflows; j++)
        cc[j] = -2; /* not looked up yet */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t fi = PyLong_AsSsize_t(PyList_GET_ITEM(col[1], i));
        if (fi < 0 || fi >= nflows) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_IndexError, "Fast.feed: flow index out of range");
            goto done;
        }
        PyObject *key = PyList_GET_ITEM(x.keys, fi);
        int64_t slot = cc[fi];
        if (slot == -2) {
            Py_hash_t h = PyObject_Hash(key);
            if (h == -1)
                goto done;
            int err = 0;
            slot = f->count ? tbl_find(f, key, h, &err) : -1;
            if (err)
                goto done;
            cc[fi] = slot;
        }
        int held = slot >= 0;
        Pkt k;
        k.ts = PyFloat_AsDouble(PyList_GET_ITEM(col[0], i));
        int db = (int)PyLong_AsLong(PyList_GET_ITEM(col[2], i));
        k.seq = (uint32_t)PyLong_AsUnsignedLongMask(PyList_GET_ITEM(col[3], i));
        k.ack = (uint32_t)PyLong_AsUnsignedLongMask(PyList_GET_ITEM(col[4], i));
        k.fl = (int)PyLong_AsLong(PyList_GET_ITEM(col[5], i));
        k.win = PyLong_AsLongLong(PyList_GET_ITEM(col[6], i));
        k.pl = PyLong_AsLongLong(PyList_GET_ITEM(col[7], i));
        k.ipl = PyLong_AsLongLong(PyList_GET_ITEM(col[8], i));
        k.pno_obj = PyList_GET_ITEM(col[9], i);
        k.pno = PyLong_AsLongLong(k.pno_obj);
        if (PyErr_Occurred())
            goto done;
        if (held) {
            int r = c_packet(&x, &f->pool[slot], &k, db);
            if (r < 0)
                goto done;
            if (r)
                continue;
            /* A connect()'s SYN on a reused port ends the row here when Tracker._slow would end it (a timer,
             * or IsReuse): it is written (Tracker._finish) and the new one may start natively below. */
            CConn *c = &f->pool[slot];
            int ends = k.fl == SYN && k.pl == 0 && k.win != 0 &&
                       ((k.ts >= c->due && c_expired(c, k.ts)) || c_is_reuse(c, db ^ c->odir, k.seq));
            if (ends && !c->end_why)
                c->end_why = END_REUSE;
            /* Python takes this packet and the rest of the connection (or writes it, when it ended) */
            PyObject *conn = materialize(f, tracker, slot);
            if (conn == NULL)
                goto done;
            cc[fi] = -1;
            if (ends) {
                int rc = PyObject_SetAttr(tracker, s_fin_pno, k.pno_obj);
                PyObject *r2 = rc < 0 ? NULL : PyObject_CallMethodOneArg(tracker, s_finish, conn);
                Py_DECREF(conn);
                if (r2 == NULL)
                    goto done;
                Py_DECREF(r2);
                /* bconn[fi] stays None, as Tracker._slow's c = None */
            } else {
                PyList_SetItem(bconn, fi, conn); /* steals */
            }
        }
        if (PyList_GET_ITEM(bconn, fi) != Py_None) {
            /* Python holds the 4-tuple. A connect()'s SYN on a reused port: Python says whether it ends that
             * row (Tracker._slow's timer and IsReuse checks); then a new one may start here. */
            int ended = 0;
            if (k.fl == SYN && k.pl == 0 && k.win != 0) {
                PyObject *iv = PyLong_FromSsize_t(i);
                PyObject *r = iv ? PyObject_CallMethodOneArg(tracker, s_native_end, iv) : NULL;
                Py_XDECREF(iv);
                if (r == NULL)
                    goto done;
                ended = PyObject_IsTrue(r);
                Py_DECREF(r);
                if (ended < 0)
                    goto done;
            }
            if (!ended) {
                if (py_one(&x, i) < 0)
                    goto done;
                continue;
            }
        }
        /* Unknown to both: Tracker._slow's route for a connect()'s first SYN (flags exactly SYN, no payload,
         * no BADSUM/TRUNC); a zero window (the 'W' letter) is left to Python. */
        int64_t cn;
        int ok = 0;
        if (k.fl == SYN && k.pl == 0 && k.win != 0 && (ok = may_open(&x, key, db, &k, compact_after, &cn)) < 0)
            goto done;
        if (!ok) {
            if (py_one(&x, i) < 0)
                goto done;
            continue;
        }
        int64_t woffer;
        if (wscale_of(&x, k.pno_obj, &woffer) < 0)
            goto done;
        PyObject *nv = PyLong_FromLongLong(cn); /* _new: self.count += 1; self._created(pno) */
        if (nv == NULL)
            goto done;
        int rc = PyObject_SetAttr(tracker, s_count, nv);
        Py_DECREF(nv);
        if (rc < 0)
            goto done;
        if (created != Py_None) {
            PyObject *r = PyObject_CallOneArg(created, k.pno_obj);
            if (r == NULL)
                goto done;
            Py_DECREF(r);
        }
        Py_hash_t h = PyObject_Hash(key);
        if (h == -1)
            goto done;
        int64_t s = pool_alloc(f);
        if (s < 0)
            goto done;
        f->count++;
        rc = c_open(&x, &f->pool[s], key, h, cn, db, &k, woffer);
        tbl_put(f, s);
        cc[fi] = s;
        if (rc < 0)
            goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(cc);
    for (int j = 0; j < NCOL; j++)
        Py_XDECREF(col[j]);
    Py_XDECREF(x.conns);
    Py_XDECREF(x.wscale);
    Py_XDECREF(x.keys);
    return result;
}

/* Fast.take(tracker, key, n): connection n of key materialized (into tracker.conns) and no longer held here,
 * just before Tracker writes it; None when it is not held here. */
static PyObject *Fast_take(Fast *f, PyObject *args) {
    PyObject *tracker, *key;
    long long n;
    if (!PyArg_ParseTuple(args, "OOL", &tracker, &key, &n))
        return NULL;
    if (f->count == 0)
        Py_RETURN_NONE;
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return NULL;
    int err = 0;
    int64_t slot = tbl_find(f, key, h, &err);
    if (err)
        return NULL;
    if (slot < 0 || f->pool[slot].n != n)
        Py_RETURN_NONE;
    return materialize(f, tracker, slot);
}

/* Tracker._expired for a connection held here (its states allow only some timers: the originator is never
 * INACTIVE, so ExpireTimer never applies; no RST, so no reset timer). 1: a timer removed it at or before
 * `now` (c->end_why says which); 0: not yet, with attempt_due and due refreshed as _expired refreshes them. */
static int c_expired(CConn *c, double now) {
    double best = INFINITY;
    int why = END_NONE;
    if (c->attempt_due <= now) {
        if ((c->sd[0].z == SYN_SENT || c->sd[0].z == SYN_ACK_SENT) && c->sd[1].z == INACTIVE) {
            best = c->attempt_due;
            why = END_ATTEMPT;
        } else {
            c->attempt_due = INFINITY;
        }
    }
    if (c->delete_due < best && c->delete_due <= now) {
        best = c->delete_due;
        why = END_CLOSE;
    }
    if (c->idle && c->last + c->idle <= now && c->last + c->idle < best) {
        best = c->last + c->idle;
        why = END_INACTIVITY;
    }
    if (best < INFINITY) {
        c->end_why = why;
        return 1;
    }
    double due = c->attempt_due < c->delete_due ? c->attempt_due : c->delete_due;
    double idle_due = c->idle ? c->last + c->idle : INFINITY;
    c->due = idle_due < due ? idle_due : due;
    return 0;
}

/* Tracker._is_reuse for a bare SYN (no ACK) from side d of a connection held here (its originator is never
 * in SYN_ACK_SENT, so the last clause of IsReuse is always true). */
static int c_is_reuse(const CConn *c, int d, uint32_t seq) {
    if (c->sd[0].did_close || c->sd[1].did_close)
        return 1;
    if (d == 1)
        return 0; /* the responder's SYN of a simultaneous open: the same connection (see Tracker._is_reuse) */
    return seq != c->sd[0].start;
}

/* Fast.expire(key, n, now): a timer entry (due, serial, key, n) popped in Tracker.sweep. True when connection
 * n of key is held here, not already gone, and a timer removed it (it is then marked gone: Tracker.sweep
 * writes it, materialized only just before, with Fast.take); as Python's `c.n == n and not c.gone and
 * self._expired(c, now) is not None`. */
static PyObject *Fast_expire(Fast *f, PyObject *args) {
    PyObject *key;
    long long n;
    double now;
    if (!PyArg_ParseTuple(args, "OLd", &key, &n, &now))
        return NULL;
    if (f->count == 0)
        Py_RETURN_FALSE;
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return NULL;
    int err = 0;
    int64_t slot = tbl_find(f, key, h, &err);
    if (err)
        return NULL;
    if (slot < 0)
        Py_RETURN_FALSE;
    CConn *c = &f->pool[slot];
    if (c->n != n || c->gone || !c_expired(c, now))
        Py_RETURN_FALSE;
    c->gone = 1;
    Py_RETURN_TRUE;
}

/* [(n, key)] of the connections held here and not gone: every one (`now` None, the flush), or those whose
 * due time has come and whose timer removed them (the periodic scan of Tracker.sweep: `c.due <= now and
 * self._expired(c, now) is not None`; those are marked gone). */
static PyObject *Fast_expire_due(Fast *f, PyObject *args) {
    PyObject *nowo;
    if (!PyArg_ParseTuple(args, "O", &nowo))
        return NULL;
    int all = nowo == Py_None;
    double now = all ? INFINITY : PyFloat_AsDouble(nowo);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (int64_t s = 0; s < f->pool_cap; s++) {
        CConn *c = &f->pool[s];
        if (c->key == NULL || c->gone)
            continue;
        if (!all) {
            if (!(c->due <= now) || !c_expired(c, now))
                continue;
            c->gone = 1;
        }
        PyObject *t = Py_BuildValue("(LO)", (long long)c->n, c->key);
        if (t == NULL || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(t);
    }
    return out;
}

static Py_ssize_t Fast_len(Fast *f) { return (Py_ssize_t)f->count; }

static PyObject *Fast_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *heappush, *conn_cls;
    if (!PyArg_ParseTuple(args, "OO", &heappush, &conn_cls))
        return NULL;
    Fast *f = (Fast *)type->tp_alloc(type, 0);
    if (f == NULL)
        return NULL;
    f->heappush = Py_NewRef(heappush);
    f->conn_cls = Py_NewRef(conn_cls);
    f->pool = NULL;
    f->table = NULL;
    f->pool_cap = f->tcap = f->count = 0;
    f->free_head = -1;
    f->coff = PyMem_Calloc(CF_COUNT, sizeof(Py_ssize_t));
    f->soff = PyMem_Calloc(SF_COUNT, sizeof(Py_ssize_t));
    if (f->coff == NULL || f->soff == NULL) {
        Py_DECREF(f);
        return PyErr_NoMemory();
    }
    PyObject *tmpl = PyObject_CallFunction(conn_cls, "iiid", 0, 0, 0, 0.0); /* the defaults, per __init__ */
    PyObject *side = tmpl ? PyObject_GetAttrString(tmpl, "o") : NULL;
    int rc = side == NULL || layout_init(&f->conn_lay, tmpl) < 0 || layout_init(&f->side_lay, side) < 0 ||
             fields_init(f->conn_lay.type, CF_NAMES, CF_COUNT, f->coff) < 0 ||
             fields_init(f->side_lay.type, SF_NAMES, SF_COUNT, f->soff) < 0 || tbl_grow(f) < 0;
    Py_XDECREF(side);
    Py_XDECREF(tmpl);
    if (rc) {
        Py_DECREF(f);
        return NULL;
    }
    return (PyObject *)f;
}

static void Fast_dealloc(Fast *f) {
    for (int64_t s = 0; s < f->pool_cap; s++)
        Py_XDECREF(f->pool[s].key);
    PyMem_Free(f->pool);
    PyMem_Free(f->table);
    PyMem_Free(f->coff);
    PyMem_Free(f->soff);
    layout_clear(&f->conn_lay);
    layout_clear(&f->side_lay);
    Py_XDECREF(f->heappush);
    Py_XDECREF(f->conn_cls);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyMethodDef fast_methods[] = {
    {"feed", (PyCFunction)Fast_feed, METH_VARARGS, "feed(tracker, dec, bconn, compact_after, created)"},
    {"take", (PyCFunction)Fast_take, METH_VARARGS, "take(tracker, key, n) -> Conn | None"},
    {"expire", (PyCFunction)Fast_expire, METH_VARARGS, "expire(key, n, now) -> bool"},
    {"expire_due", (PyCFunction)Fast_expire_due, METH_VARARGS, "expire_due(now | None) -> [(n, key)]"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods fast_seq = {.sq_length = (lenfunc)Fast_len};

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tcpwise.trace._ctrack.Fast",
    .tp_basicsize = sizeof(Fast),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Connections in their common life, held in C for a Tracker (see the top of _ctrack.c).",
    .tp_new = Fast_new,
    .tp_dealloc = (destructor)Fast_dealloc,
    .tp_methods = fast_methods,
    .tp_as_sequence = &fast_seq,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctrack", NULL, -1, NULL};

#define INTERN(var, text)                                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                                      \
        return NULL;

PyMODINIT_FUNC PyInit__ctrack(void) {
    for (int i = 1; i < S_COUNT; i++)
        INTERN(state_str[i], STATE_NAMES[i]);
    for (int i = 1; i < END_COUNT; i++)
        INTERN(end_str[i], END_NAMES[i]);
    INTERN(s_conns, "conns");
    INTERN(s_half, "half");
    INTERN(s_recent, "recent");
    INTERN(s_timers, "timers");
    INTERN(s_count, "count");
    INTERN(s_serial, "_serial");
    INTERN(s_tq, "_tq");
    INTERN(s_want, "want");
    INTERN(s_native_one, "_native_one");
    INTERN(s_native_end, "_native_end");
    INTERN(s_fin_pno, "fin_pno");
    INTERN(s_finish, "_finish");
    INTERN(s_attempt, "attempt");
    INTERN(s_close, "close");
    INTERN(s_inactivity, "inactivity");
    INTERN(s_handshake_inactivity, "handshake_inactivity");
    INTERN(s_wscale, "wscale");
    INTERN(s_inactivity_end, "inactivity");
    if (PyType_Ready(&FastType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Fast", (PyObject *)&FastType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
