/* Native conn_json: the JSON line of one finished connection, byte-identical to output._conn_json_py.
 *
 * output._conn_json_py (and story() and its helpers in output.py, conn_state/uid_of in zeek.py, fmt_seconds/
 * fmt_num in term.py) is the reference; every function below names the Python it mirrors. The line is written
 * into one Latin-1 byte buffer and copied into the str at the end (our only non-ASCII text is "µs").
 *
 * Anything this file does not model exactly -- an object that is not exactly tracker.Conn/Side, an unset slot,
 * an attribute of an unexpected type, an int outside 64 bits where we compute with it, a string with lone
 * surrogates -- makes the whole row go to the registered Python function instead (UNSUPPORTED below), so the
 * output (or the exception) is the reference's by construction. Ints that are only printed fall back to
 * PyObject_Str when they exceed 64 bits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <string.h>

/* ---- configuration: the classes and the Python reference, registered by output.py ------------------------ */

enum { C_N, C_TS, C_LAST, C_HIST, C_TRANSITIONS, C_PARTIAL, C_SYN_T, C_SYN_LAST_T, C_SYNACK_T, C_ACK_T,
       C_ORIG_EP, C_RESP_EP, C_RST_BY, C_FIRST_FIN, C_FIRST_INDEX, C_LAST_INDEX, C_RST_SILENCE, C_RST_REPLY,
       C_PEER_BYTES_AT_FIN, C_IDLE, C_END, C_PREV_N, C_PREV_END, C_O, C_R, C_SIDES, C_COUNT };
static const char *const conn_names[C_COUNT] = {
    "n", "ts", "last", "hist", "transitions", "partial", "syn_t", "syn_last_t", "synack_t", "ack_t",
    "orig_ep", "resp_ep", "rst_by", "first_fin", "first_index", "last_index", "rst_silence", "rst_reply",
    "peer_bytes_at_fin", "idle", "end", "prev_n", "prev_end", "o", "r", "sides"};

enum { S_PKTS, S_IPBYTES, S_Z, S_ACC, S_FIN_CNT, S_MISSED, S_RXMT, S_CTL_RXMT, S_OOO, S_ZW, S_KEEPALIVE,
       S_WINPROBE, S_CHK, S_WIN, S_WSHIFT, S_WSYN, S_WMAX, S_FIN_END, S_STATE, S_RST_T, S_RST_STATE, S_T_LAST,
       S_COUNT };
static const char *const side_names[S_COUNT] = {
    "pkts", "ipbytes", "z", "acc", "fin_cnt", "missed", "rxmt", "ctl_rxmt", "ooo", "zw", "keepalive",
    "winprobe", "chk", "win", "wshift", "wsyn", "wmax", "fin_end", "state", "rst_t", "rst_state", "t_last"};

static PyTypeObject *conn_type, *side_type; /* strong references, set by configure() */
static PyObject *py_fallback;               /* output._conn_json_py */
/* Byte offsets of the __slots__ members. A slot is a T_OBJECT_EX member at a fixed offset in every instance
 * of that exact class: reading it is what the member descriptor's __get__ does, minus the type dispatch (the
 * ~60 PyObject_GetAttr calls a row needs would cost about as much as the whole row otherwise). Only used when
 * Py_TYPE(obj) is exactly the configured class. */
static Py_ssize_t conn_off[C_COUNT], side_off[S_COUNT];
static PyObject *empty_str;

static int slot_offsets(PyTypeObject *tp, const char *const *names, int count, Py_ssize_t *out)
{
    for (int i = 0; i < count; i++) {
        PyObject *d = PyDict_GetItemString(tp->tp_dict, names[i]); /* borrowed */
        if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a __slots__ member", tp->tp_name, names[i]);
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "%s.%s is not a plain slot", tp->tp_name, names[i]);
            return -1;
        }
        out[i] = m->offset;
    }
    return 0;
}

static PyObject *configure(PyObject *self, PyObject *args)
{
    PyObject *ct, *st, *fb;
    if (!PyArg_ParseTuple(args, "O!O!O:configure", &PyType_Type, &ct, &PyType_Type, &st, &fb))
        return NULL;
    if (slot_offsets((PyTypeObject *)ct, conn_names, C_COUNT, conn_off) < 0 ||
        slot_offsets((PyTypeObject *)st, side_names, S_COUNT, side_off) < 0)
        return NULL;
    Py_INCREF(ct);
    Py_INCREF(st);
    Py_INCREF(fb);
    Py_XSETREF(conn_type, (PyTypeObject *)ct);
    Py_XSETREF(side_type, (PyTypeObject *)st);
    Py_XSETREF(py_fallback, fb);
    Py_RETURN_NONE;
}

/* ---- output buffer ---------------------------------------------------------------------------------------- */

/* The line is built as Latin-1 (PyUnicode_1BYTE_KIND) bytes and copied into the str once; `wide` records a
 * byte >= 0x80 (our "µ" or a Latin-1 string we were given) so the str gets the right maximum character. */
typedef struct {
    char *p;
    Py_ssize_t len, cap;
    int wide;
    char stack[3072];
} Buf;

static int grow(Buf *b, Py_ssize_t need)
{
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need)
        cap *= 2;
    char *np;
    if (b->p == b->stack) {
        np = PyMem_Malloc(cap);
        if (np != NULL)
            memcpy(np, b->p, b->len);
    } else {
        np = PyMem_Realloc(b->p, cap);
    }
    if (np == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

/* Always inlined: most pieces are short literals, whose copy the compiler then unrolls (a libc memcpy call
 * per piece was a tenth of the row's time). */
static inline __attribute__((always_inline)) int put(Buf *b, const char *s, Py_ssize_t n)
{
    if (b->len + n > b->cap && grow(b, n) < 0)
        return -1;
    char *d = b->p + b->len;
    if (__builtin_constant_p(n))
        memcpy(d, s, n);
    else
        for (Py_ssize_t i = 0; i < n; i++)
            d[i] = s[i];
    b->len += n;
    return 0;
}

#define PUTS(b, lit) put((b), (lit), (Py_ssize_t)(sizeof(lit) - 1))

static int put_ll(Buf *b, long long v)
{
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    return put(b, q, e - q);
}

/* ---- reading values: 0 = ok, 1 = UNSUPPORTED (the row goes to Python), -1 = a Python error is set ---------- */

#define UNSUPPORTED 1
#define TRY(x)                                                                                                   \
    do {                                                                                                         \
        int rc_ = (x);                                                                                           \
        if (rc_)                                                                                                 \
            return rc_;                                                                                          \
    } while (0)

/* An exact int that fits in 64 bits (bools and other subclasses format differently: not modelled). */
static int get_ll(PyObject *o, long long *v)
{
    if (!PyLong_CheckExact(o))
        return UNSUPPORTED;
    int of;
    *v = PyLong_AsLongLongAndOverflow(o, &of);
    if (of)
        return UNSUPPORTED;
    if (*v == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

static int put_str(Buf *b, PyObject *o);

/* f"{o}" for an int that is only printed: any size (PyObject_Str beyond 64 bits). */
static int put_int(Buf *b, PyObject *o)
{
    if (!PyLong_CheckExact(o))
        return UNSUPPORTED;
    int of;
    long long v = PyLong_AsLongLongAndOverflow(o, &of);
    if (!of) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        return put_ll(b, v);
    }
    PyObject *s = PyObject_Str(o);
    if (s == NULL)
        return -1;
    int rc = put_str(b, s); /* ASCII digits */
    Py_DECREF(s);
    return rc;
}

static int get_f(PyObject *o, double *v)
{
    if (!PyFloat_CheckExact(o))
        return UNSUPPORTED;
    *v = PyFloat_AS_DOUBLE(o);
    return 0;
}

/* The text of an exact str of 1-byte kind (a wider one is left to Python). */
static int put_str(Buf *b, PyObject *o)
{
    if (!PyUnicode_CheckExact(o) || PyUnicode_READY(o) < 0 || PyUnicode_KIND(o) != PyUnicode_1BYTE_KIND)
        return UNSUPPORTED;
    if (!PyUnicode_IS_ASCII(o))
        b->wide = 1;
    return put(b, (const char *)PyUnicode_1BYTE_DATA(o), PyUnicode_GET_LENGTH(o));
}

/* f"{x:.<prec>f}" and repr(x) (float_repr: mode 'r' with Py_DTSF_ADD_DOT_0). */
static int put_fmt(Buf *b, double x, char mode, int prec)
{
    char *s = PyOS_double_to_string(x, mode, prec, mode == 'r' ? Py_DTSF_ADD_DOT_0 : 0, NULL);
    if (s == NULL)
        return -1;
    int rc = put(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return rc;
}

static const double POW10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* x * 10^p rounded half-to-even, computed exactly: x = m * 2^e with m < 2^53, so x * 10^p = m * 10^p * 2^e
 * (m * 10^p < 2^103 fits in 128 bits) and the rounding looks at the exact remainder of the shift. *dist is
 * |q - x * 10^p| scaled by 2^-e (0 when e >= 0), *sh that scale's exponent. Returns 0, or 1 when x is out of
 * this range (not finite, p > 15, or the result would not fit in 63 bits). */
static int scaled_round(double x, int p, unsigned long long *q, unsigned __int128 *dist, int *sh,
                        unsigned long long *mant)
{
    if (!isfinite(x) || p < 0 || p > 15 || fabs(x) * POW10[p] >= 9.2e18)
        return 1;
    int ex;
    double f = frexp(fabs(x), &ex); /* |x| = f * 2^ex, 0.5 <= f < 1 (or f == 0) */
    unsigned long long m = (unsigned long long)ldexp(f, 53);
    int e = ex - 53;
    unsigned __int128 n = (unsigned __int128)m * (unsigned long long)POW10[p];
    *mant = m;
    *sh = e < 0 ? -e : 0;
    if (e >= 0) {
        *q = (unsigned long long)(n << e);
        *dist = 0;
    } else if (-e >= 104) { /* n < 2^103 <= half: rounds to 0 */
        *q = 0;
        *dist = n;
        *sh = -e;
        if (-e > 127) /* the distance cannot be expressed at this scale: only callers that need it care */
            return 1;
    } else {
        unsigned __int128 half = (unsigned __int128)1 << (-e - 1), rem = n & ((half << 1) - 1);
        *q = (unsigned long long)(n >> -e);
        *dist = rem;
        if (rem > half || (rem == half && (*q & 1))) {
            *q += 1;
            *dist = (half << 1) - rem;
        }
    }
    return 0;
}

/* Digits of q with p of them after the point, and the sign of x (dtoa keeps the sign of -0.0 and of negatives
 * that round to 0). */
static int put_scaled(Buf *b, double x, unsigned long long q, int p)
{
    char tmp[48], *end = tmp + sizeof tmp, *c = end;
    for (int i = 0; i < p; i++) {
        *--c = (char)('0' + q % 10);
        q /= 10;
    }
    if (p)
        *--c = '.';
    do {
        *--c = (char)('0' + q % 10);
        q /= 10;
    } while (q);
    if (signbit(x))
        *--c = '-';
    return put(b, c, end - c);
}

/* f"{x:.<p>f}" without dtoa (~150 ns a call, ~17 calls a row): equal to PyOS_double_to_string(x, 'f', p),
 * which is correctly rounded (half-to-even on exact ties), as scaled_round is. */
static int put_fixed(Buf *b, double x, int p)
{
    unsigned long long q, m;
    unsigned __int128 dist;
    int sh;
    if (scaled_round(x, p, &q, &dist, &sh, &m))
        return put_fmt(b, x, 'f', p);
    return put_scaled(b, x, q, p);
}

#define put_f6(b, x) put_fixed((b), (x), 6)

/* repr(x) for 1e-4 <= |x| < 2^32 (timestamps) without dtoa. There the spacing of doubles is below 1e-6, so
 * any decimal with at most 6 decimals that reads back as x is round(x, 6) itself: repr's shortest
 * round-tripping digits are round(x, 6) without trailing zeros, provided round(x, 6) reads back as x at all,
 * i.e. |round(x, 6) - x| < half an ulp, which in units of 2^-sh * 10^-6 is dist < 10^6 / 2. Otherwise (and
 * at a power of two, where the ulp below is smaller) dtoa decides. */
static int put_repr(Buf *b, double x)
{
    unsigned long long q, m;
    unsigned __int128 dist;
    int sh;
    double a = fabs(x);
    if (!(a >= 1e-4 && a < 4294967296.0) || scaled_round(x, 6, &q, &dist, &sh, &m) ||
        m == (1ULL << 52) || dist >= 500000)
        return put_fmt(b, x, 'r', 0);
    int p = 6;
    while (p > 1 && q % 10 == 0) { /* strip trailing zeros, keep one decimal ("1.0": Py_DTSF_ADD_DOT_0) */
        q /= 10;
        p--;
    }
    return put_scaled(b, x, q, p);
}

static int is_str(PyObject *o, const char *lit)
{
    return PyUnicode_CheckExact(o) && PyUnicode_CompareWithASCIIString(o, lit) == 0;
}

/* ---- one row's attributes ----------------------------------------------------------------------------------- */

typedef struct {
    PyObject *c[C_COUNT];    /* borrowed: see conn_json */
    PyObject *s[2][S_COUNT]; /* borrowed */
    PyObject *names[2];      /* strong: name(orig_ep >> 16), name(resp_ep >> 16), as str */
    long long ep[2];         /* orig_ep, resp_ep */
    long long size[2];       /* Side.size */
} Row;

static inline PyObject *slot(PyObject *o, Py_ssize_t off) { return *(PyObject **)((char *)o + off); }

/* f"{name(ep >> 16)}" as a str; 0, -1 (error) */
static int call_name(PyObject *name, long long ep, PyObject **out)
{
    PyObject *id = PyLong_FromLongLong(ep >> 16);
    if (id == NULL)
        return -1;
    PyObject *v = PyObject_CallOneArg(name, id);
    Py_DECREF(id);
    if (v != NULL && !PyUnicode_CheckExact(v)) /* what the f-string does with a non-str */
        Py_SETREF(v, PyObject_Format(v, empty_str));
    *out = v;
    return v == NULL ? -1 : 0;
}

/* The row's attributes. name() is the only Python code a row runs, so it is called first; after it nothing can
 * rebind a slot before the line is complete, and the attributes are read as borrowed references. (The reference
 * calls name() in the middle of the row: only a name() that changed the Conn could tell the difference.) */
static int row_load(Row *r, PyObject *c, PyObject *name)
{
    if (conn_type == NULL || Py_TYPE(c) != conn_type)
        return UNSUPPORTED;
    for (int d = 0; d < 2; d++) {
        PyObject *ep = slot(c, conn_off[C_ORIG_EP + d]);
        if (ep == NULL) /* unset slot: AttributeError in Python, if it gets that far */
            return UNSUPPORTED;
        TRY(get_ll(ep, &r->ep[d]));
        if (r->ep[d] < 0)
            return UNSUPPORTED;
    }
    TRY(call_name(name, r->ep[0], &r->names[0]));
    TRY(call_name(name, r->ep[1], &r->names[1]));
    for (int i = 0; i < C_COUNT; i++) {
        if ((r->c[i] = slot(c, conn_off[i])) == NULL)
            return UNSUPPORTED;
        __builtin_prefetch(r->c[i]); /* see below */
    }
    PyObject *sides = r->c[C_SIDES];
    /* The reference reads c.o/c.r in places and c.sides[i] in others: they must be the same objects. */
    if (!PyTuple_CheckExact(sides) || PyTuple_GET_SIZE(sides) != 2 || PyTuple_GET_ITEM(sides, 0) != r->c[C_O] ||
        PyTuple_GET_ITEM(sides, 1) != r->c[C_R])
        return UNSUPPORTED;
    for (int d = 0; d < 2; d++) {
        PyObject *s = r->c[C_O + d];
        if (Py_TYPE(s) != side_type)
            return UNSUPPORTED;
        /* A finished connection's objects are mostly out of cache by the time its row is written: ask for all
         * of them now, so that their ~60 misses overlap instead of stalling one by one as the line is built. */
        for (int i = 0; i < S_COUNT; i++) {
            if ((r->s[d][i] = slot(s, side_off[i])) == NULL)
                return UNSUPPORTED;
            __builtin_prefetch(r->s[d][i]);
        }
        /* Side.size (Zeek's TCP_Endpoint::Size): acc minus the SYN octet, minus the FIN octet. */
        long long n, fc;
        TRY(get_ll(r->s[d][S_ACC], &n));
        TRY(get_ll(r->s[d][S_FIN_CNT], &fc));
        if (n)
            n -= 1;
        if (fc && n)
            n -= 1;
        r->size[d] = n;
    }
    return 0;
}

/* ---- zeek.py ---------------------------------------------------------------------------------------------------- */

enum { INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET }; /* tracker.py */

/* _RSTOS0.fullmatch(history) for r"\^?S[^HAFGIQ]*R.*": an R after the S before any of H A F G I Q. */
static int rstos0(const char *h, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (i < n && h[i] == '^')
        i++;
    if (i >= n || h[i] != 'S')
        return 0;
    for (i++; i < n; i++) {
        if (h[i] == 'R')
            break;
        if (h[i] == '\n' || strchr("HAFGIQ", h[i]) != NULL)
            return 0;
    }
    if (i >= n)
        return 0;
    for (; i < n; i++) /* ".*" does not match a newline */
        if (h[i] == '\n')
            return 0;
    return 1;
}

/* zeek.conn_state; the history text is passed in (already joined for the row). */
static int conn_state(Row *r, const char *hist, Py_ssize_t hn, const char **out)
{
    long long os_, rs;
    TRY(get_ll(r->s[0][S_Z], &os_));
    TRY(get_ll(r->s[1][S_Z], &rs));
    int o_inactive = os_ == INACTIVE || os_ == PARTIAL;
    int r_inactive = rs == INACTIVE || rs == PARTIAL;
    if (rs == RESET) {
        if (os_ == SYN_SENT || os_ == SYN_ACK_SENT || (os_ == RESET && r->size[0] == 0 && r->size[1] == 0))
            *out = "REJ";
        else
            *out = o_inactive ? "RSTRH" : "RSTR";
    } else if (os_ == RESET) {
        if (r_inactive)
            *out = rstos0(hist, hn) ? "RSTOS0" : "OTH";
        else
            *out = "RSTO";
    } else if (rs == CLOSED && os_ == CLOSED)
        *out = "SF";
    else if (os_ == CLOSED)
        *out = r_inactive ? "SH" : "S2";
    else if (rs == CLOSED)
        *out = o_inactive ? "SHR" : "S3";
    else if (os_ == SYN_SENT && rs == INACTIVE)
        *out = "S0";
    else if (os_ == ESTABLISHED && rs == ESTABLISHED)
        *out = "S1";
    else
        *out = "OTH";
    return 0;
}

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* zeek.uid_of: 'C', 10 base62 digits of a hash of the salt, then n * 0x9E3779B1 mod 2^32 in base62. Both
 * products are taken mod 2^64 / 2^32 in Python too, so the masked 64-bit values give the same digits. */
static int put_uid(Buf *b, PyObject *n_obj, PyObject *salt)
{
    if (!PyLong_CheckExact(n_obj) || !PyLong_Check(salt))
        return UNSUPPORTED;
    unsigned long long s = PyLong_AsUnsignedLongLongMask(salt);
    if (s == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    unsigned long long n = PyLong_AsUnsignedLongLongMask(n_obj);
    if (n == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    char u[18];
    unsigned long long h = s * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    u[0] = 'C';
    for (int i = 1; i <= 10; i++) {
        u[i] = B62[h % 62];
        h /= 62;
    }
    unsigned long long x = (n * 0x9E3779B1ULL) & 0xFFFFFFFFULL;
    for (int k = 0; k < 3; k++) { /* _B62_2[a] is B62[a // 62] + B62[a % 62] */
        unsigned long long a = x % 3844;
        x /= 3844;
        u[11 + 2 * k] = B62[a / 62];
        u[12 + 2 * k] = B62[a % 62];
    }
    u[17] = B62[x % 62];
    return put(b, u, 18);
}

/* ---- term.py ---------------------------------------------------------------------------------------------------- */

/* term.fmt_num(x, 3) for a finite float x != 0. */
static int put_num3(Buf *b, double x)
{
    if (x == floor(x) && fabs(x) < 1e15)
        return put_ll(b, (long long)x);
    int mag = (int)floor(log10(fabs(x)));
    int dec = 2 - mag > 0 ? 2 - mag : 0;
    unsigned long long q, m;
    unsigned __int128 dist;
    int sh;
    if (!scaled_round(x, dec, &q, &dist, &sh, &m)) {
        int p = dec;
        while (p > 0 && q % 10 == 0) { /* s.rstrip("0").rstrip(".") */
            q /= 10;
            p--;
        }
        return put_scaled(b, x, q, p);
    }
    char *s = PyOS_double_to_string(x, 'f', dec, 0, NULL);
    if (s == NULL)
        return -1;
    size_t n = strlen(s);
    if (strchr(s, '.') != NULL) { /* s.rstrip("0").rstrip(".") */
        while (n && s[n - 1] == '0')
            n--;
        if (n && s[n - 1] == '.')
            n--;
    }
    int rc = put(b, s, (Py_ssize_t)n);
    PyMem_Free(s);
    return rc;
}

/* term.fmt_seconds(s) with digits=3. */
static int put_seconds(Buf *b, double s)
{
    if (!isfinite(s)) /* round(inf) raises; nan takes a path we do not model: Python decides */
        return UNSUPPORTED;
    double a = fabs(s);
    if (a == 0)
        return PUTS(b, "0 s");
    if (a < 1e-3) {
        TRY(put_num3(b, s * 1e6));
        b->wide = 1;
        return PUTS(b, " \xb5s"); /* U+00B5 MICRO SIGN in Latin-1 */
    }
    if (a < 1) {
        TRY(put_num3(b, s * 1e3));
        return PUTS(b, " ms");
    }
    if (a >= 100) {
        if (a >= 1e15)
            return UNSUPPORTED;
        /* round(s): float.__round__ without ndigits, halves to even (Objects/floatobject.c) */
        double rd = round(s);
        if (fabs(s - rd) == 0.5)
            rd = 2.0 * round(s / 2.0);
        TRY(put_ll(b, (long long)rd));
        return PUTS(b, " s");
    }
    TRY(put_num3(b, s));
    return PUTS(b, " s");
}

/* ---- output.py: story() ----------------------------------------------------------------------------------------- */

static const char *const WHO[2] = {"client", "server"};
#define MAX_EXACT (1LL << 53) /* ints whose true division by 1000 / 1e6 is the double division */

/* output._kb */
static int put_kb(Buf *b, long long n)
{
    if (n < 1000) {
        TRY(put_ll(b, n));
        return PUTS(b, " B");
    }
    if (n > MAX_EXACT)
        return UNSUPPORTED;
    if (n < 1000000) {
        TRY(put_fixed(b, (double)n / 1000.0, 1));
        return PUTS(b, " kB");
    }
    TRY(put_fixed(b, (double)n / 1e6, 1));
    return PUTS(b, " MB");
}

static int put_who(Buf *b, int d) { return put(b, WHO[d], 6); }

/* `x or "?"` for a str-or-None attribute */
static int put_or_q(Buf *b, PyObject *o)
{
    if (o == Py_None || (PyUnicode_CheckExact(o) && PyUnicode_GET_LENGTH(o) == 0))
        return PUTS(b, "?");
    return put_str(b, o);
}

/* The int 0 or 1 in o (a side index). */
static int get_side(PyObject *o, int *d)
{
    long long v;
    TRY(get_ll(o, &v));
    if (v != 0 && v != 1)
        return UNSUPPORTED;
    *d = (int)v;
    return 0;
}

/* `x or 0.0` for a float-or-None attribute, as a double */
static int get_f_or0(PyObject *o, double *v)
{
    if (o == Py_None) {
        *v = 0.0;
        return 0;
    }
    TRY(get_f(o, v));
    if (*v == 0) /* -0.0 is falsy too */
        *v = 0.0;
    return 0;
}

static int get_bool(PyObject *o, int *v)
{
    if (!PyBool_Check(o))
        return UNSUPPORTED;
    *v = o == Py_True;
    return 0;
}

static int sum2(Row *r, int i, long long *out)
{
    long long a, c;
    TRY(get_ll(r->s[0][i], &a));
    TRY(get_ll(r->s[1][i], &c));
    if (__builtin_add_overflow(a, c, out))
        return UNSUPPORTED;
    return 0;
}

/* output._story_open */
static int story_open(Buf *b, Row *r, const char *st, int *any)
{
    PyObject **c = r->c;
    int partial;
    TRY(get_bool(c[C_PARTIAL], &partial));
    if (c[C_PREV_N] != Py_None) {
        TRY(PUTS(b, "continues #"));
        TRY(put_int(b, c[C_PREV_N]));
        if (c[C_PREV_END] != Py_None && !PyUnicode_CheckExact(c[C_PREV_END]))
            return UNSUPPORTED;
        if (is_str(c[C_PREV_END], "inactivity"))
            TRY(PUTS(b, " (Zeek's inactivity timeout ended that row)"));
    } else if (partial) {
        TRY(PUTS(b, "mid-stream (no handshake seen)"));
    } else if (!strcmp(st, "S0") || !strcmp(st, "SH")) {
        long long n;
        TRY(get_ll(r->s[0][S_PKTS], &n));
        TRY(PUTS(b, "SYN unanswered"));
        if (n > 1) {
            TRY(PUTS(b, " ("));
            TRY(put_ll(b, n));
            TRY(PUTS(b, " tries)"));
        }
    } else if (!strcmp(st, "REJ")) {
        TRY(PUTS(b, "refused: SYN answered by RST"));
    } else if (c[C_SYNACK_T] != Py_None && c[C_SYN_T] != Py_None) {
        double syn, end;
        TRY(get_f(c[C_SYN_T], &syn));
        TRY(get_f(c[C_ACK_T] != Py_None ? c[C_ACK_T] : c[C_SYNACK_T], &end));
        TRY(PUTS(b, "handshake "));
        TRY(put_seconds(b, end - syn));
        if (c[C_ACK_T] != Py_None && c[C_SYN_LAST_T] != Py_None) {
            double last;
            TRY(get_f(c[C_SYN_LAST_T], &last));
            if (last > syn) {
                TRY(PUTS(b, " (SYN retried; RTT "));
                TRY(put_seconds(b, end - last)); /* end is ack_t here */
                TRY(PUTS(b, ")"));
            }
        }
    } else {
        return 0;
    }
    *any = 1;
    return 0;
}

/* output._story_rst */
static int story_rst(Buf *b, Row *r, int by)
{
    PyObject **s = r->s[by];
    double sil;
    int reply;
    TRY(get_f_or0(r->c[C_RST_SILENCE], &sil));
    TRY(get_bool(r->c[C_RST_REPLY], &reply));
    TRY(PUTS(b, "RST by "));
    TRY(put_who(b, by));
    if (sil >= 10 && reply) {
        TRY(PUTS(b, " answering the "));
        TRY(put_who(b, 1 - by));
        TRY(PUTS(b, " after "));
        TRY(put_fixed(b, sil, 0));
        return PUTS(b, " s of silence: it no longer knew the connection (half-open)");
    }
    TRY(PUTS(b, " in "));
    TRY(put_or_q(b, s[S_RST_STATE]));
    if (sil >= 10) {
        TRY(PUTS(b, " after "));
        TRY(put_fixed(b, sil, 0));
        TRY(PUTS(b, " s idle (abort on timeout)"));
    }
    return 0;
}

/* output._story_fin */
static int story_fin(Buf *b, Row *r, int d)
{
    PyObject **other = r->s[1 - d];
    long long at, after;
    TRY(get_ll(r->c[C_PEER_BYTES_AT_FIN], &at));
    if (__builtin_sub_overflow(r->size[1 - d], at, &after))
        return UNSUPPORTED;
    if (after > 0) {
        TRY(PUTS(b, "half-close: "));
        TRY(put_who(b, 1 - d));
        TRY(PUTS(b, " sent "));
        TRY(put_kb(b, after));
        TRY(PUTS(b, " after the "));
        TRY(put_who(b, d));
        TRY(PUTS(b, "'s FIN; "));
    }
    PyObject *ost = other[S_STATE], *dst = r->s[d][S_STATE];
    if ((ost != Py_None && !PyUnicode_CheckExact(ost)) || (dst != Py_None && !PyUnicode_CheckExact(dst)))
        return UNSUPPORTED;
    if (other[S_FIN_END] == Py_None) {
        TRY(put_who(b, d));
        TRY(PUTS(b, " closed first; "));
        TRY(put_who(b, 1 - d));
        TRY(PUTS(b, " never closed ("));
        TRY(put_or_q(b, ost));
        return PUTS(b, ")");
    }
    if (is_str(dst, "TIME_WAIT") && is_str(ost, "TIME_WAIT"))
        return PUTS(b, "simultaneous close: both hold TIME_WAIT");
    TRY(put_who(b, d));
    TRY(PUTS(b, " closed first -> "));
    TRY(put_who(b, d));
    return PUTS(b, " holds TIME_WAIT");
}

/* output._story_still_open */
static int story_still_open(Buf *b, Row *r)
{
    PyObject **c = r->c;
    if (!PyUnicode_CheckExact(c[C_END]))
        return UNSUPPORTED;
    if (is_str(c[C_END], "inactivity")) {
        double idle;
        if (PyLong_CheckExact(c[C_IDLE])) { /* f"{300:.0f}" formats float(300) */
            idle = PyLong_AsDouble(c[C_IDLE]);
            if (idle == -1.0 && PyErr_Occurred())
                return -1;
        } else {
            TRY(get_f(c[C_IDLE], &idle));
        }
        TRY(PUTS(b, "still open, silent for "));
        TRY(put_fixed(b, idle, 0));
        TRY(PUTS(b, " s: Zeek's inactivity timeout ended the row"));
    } else {
        TRY(PUTS(b, "still open at end of capture"));
    }
    PyObject *ot = r->s[0][S_T_LAST], *rt = r->s[1][S_T_LAST];
    if (ot == Py_None || rt == Py_None)
        return 0;
    double o, t;
    TRY(get_f(ot, &o));
    TRY(get_f(rt, &t));
    if (!(fabs(o - t) >= 5))
        return 0;
    int d = o > t ? 0 : 1;
    long long rx, ka, cr, sum;
    TRY(get_ll(r->s[d][S_RXMT], &rx));
    TRY(get_ll(r->s[d][S_KEEPALIVE], &ka));
    TRY(get_ll(r->s[d][S_CTL_RXMT], &cr));
    if (!(rx || ka || cr))
        return 0;
    if (__builtin_add_overflow(rx, cr, &sum))
        return UNSUPPORTED;
    TRY(PUTS(b, "; half-open suspected: "));
    TRY(put_who(b, d));
    TRY(PUTS(b, " kept sending for "));
    TRY(put_fixed(b, fabs(o - t), 0));
    TRY(PUTS(b, " s ("));
    TRY(put_ll(b, sum));
    TRY(PUTS(b, " retrans, "));
    TRY(put_ll(b, ka));
    return PUTS(b, " keepalives) with no answer");
}

/* output._story_extras, written as one part ("a, b, c") after "; " when there is any. */
static int story_extras(Buf *b, Row *r, const char *st, int any)
{
    long long rx, cr, ka, zw, ooo, chk;
    TRY(sum2(r, S_RXMT, &rx));
    TRY(sum2(r, S_CTL_RXMT, &cr));
    TRY(sum2(r, S_KEEPALIVE, &ka));
    TRY(sum2(r, S_ZW, &zw));
    TRY(sum2(r, S_OOO, &ooo));
    TRY(sum2(r, S_CHK, &chk));
    if (cr && (!strcmp(st, "S0") || !strcmp(st, "SH")))
        cr = 0;
    const long long v[6] = {rx, cr, ka, zw, ooo, chk};
    static const char *const what[6] = {" retrans", " SYN/FIN retrans", " keepalive", " zero-win",
                                        " out-of-order", " bad checksum"};
    int first = 1;
    for (int i = 0; i < 6; i++) {
        if (!v[i])
            continue;
        if (first) {
            if (any)
                TRY(PUTS(b, "; "));
        } else {
            TRY(PUTS(b, ", "));
        }
        first = 0;
        TRY(put_ll(b, v[i]));
        TRY(put(b, what[i], (Py_ssize_t)strlen(what[i])));
        if (i == 5)
            TRY(v[i] > 1 ? PUTS(b, "s ignored") : PUTS(b, " ignored"));
    }
    return 0;
}

/* output.story: the parts joined by "; " */
static int put_story(Buf *b, Row *r, const char *st)
{
    PyObject **c = r->c;
    int any = 0;
    TRY(story_open(b, r, st, &any));
#define SEP()                                                                                                    \
    do {                                                                                                         \
        if (any)                                                                                                 \
            TRY(PUTS(b, "; "));                                                                                  \
        any = 1;                                                                                                 \
    } while (0)
    if (r->size[0] || r->size[1]) {
        SEP();
        TRY(PUTS(b, "client "));
        TRY(put_kb(b, r->size[0]));
        TRY(PUTS(b, " / server "));
        TRY(put_kb(b, r->size[1]));
    }
    int rej = !strcmp(st, "REJ");
    if (c[C_RST_BY] != Py_None && !rej) {
        int by;
        TRY(get_side(c[C_RST_BY], &by));
        SEP();
        TRY(story_rst(b, r, by));
    }
    if (c[C_FIRST_FIN] != Py_None) {
        int d;
        TRY(get_side(c[C_FIRST_FIN], &d));
        SEP();
        TRY(story_fin(b, r, d));
    } else if (c[C_RST_BY] == Py_None && strcmp(st, "S0") && !rej && strcmp(st, "SH")) {
        SEP();
        TRY(story_still_open(b, r));
    }
#undef SEP
    return story_extras(b, r, st, any);
}

/* ---- output.py: _side_json -------------------------------------------------------------------------------------- */

/* v << shift in 64 bits, or UNSUPPORTED when Python's unbounded shift (or its ValueError) would differ. */
static int shl(long long v, long long shift, long long *out)
{
    if (shift < 0 || shift > 62 || v < 0 || (v >> (62 - shift)) != 0)
        return UNSUPPORTED;
    *out = v << shift;
    return 0;
}

static int put_side(Buf *b, Row *r, int d)
{
    PyObject **s = r->s[d];
    PyObject *win = s[S_WIN], *wsyn = s[S_WSYN], *wshift = s[S_WSHIFT];
    long long shift = 0, w = 0, wsc = 0, wmax;
    int has_w = 1;
    if (wshift != Py_None)
        TRY(get_ll(wshift, &shift));
    if (win == Py_None) {
        if (wsyn == Py_None)
            has_w = 0;
        else
            TRY(get_ll(wsyn, &w));
        wsc = w;
    } else {
        TRY(get_ll(win, &w));
        if (shift)
            TRY(shl(w, shift, &wsc));
        else
            wsc = w;
    }
    TRY(get_ll(s[S_WMAX], &wmax));
    if (shift)
        TRY(shl(wmax, shift, &wmax));
    if (wsyn != Py_None) {
        long long ws;
        TRY(get_ll(wsyn, &ws));
        if (ws > wmax)
            wmax = ws;
    }
    TRY(PUTS(b, "{\"pkts\":"));
    TRY(put_int(b, s[S_PKTS]));
    TRY(PUTS(b, ",\"ip_bytes\":"));
    TRY(put_int(b, s[S_IPBYTES]));
    TRY(PUTS(b, ",\"bytes\":"));
    TRY(put_ll(b, r->size[d]));
    TRY(PUTS(b, ",\"missed_bytes\":"));
    TRY(put_int(b, s[S_MISSED]));
    /* The reference writes _QUIET when all seven are 0: the same text as the numbers themselves. */
    TRY(PUTS(b, ",\"retransmissions\":"));
    TRY(put_int(b, s[S_RXMT]));
    TRY(PUTS(b, ",\"control_retransmissions\":"));
    TRY(put_int(b, s[S_CTL_RXMT]));
    TRY(PUTS(b, ",\"out_of_order\":"));
    TRY(put_int(b, s[S_OOO]));
    TRY(PUTS(b, ",\"zero_windows\":"));
    TRY(put_int(b, s[S_ZW]));
    TRY(PUTS(b, ",\"keepalives\":"));
    TRY(put_int(b, s[S_KEEPALIVE]));
    TRY(PUTS(b, ",\"window_probes\":"));
    TRY(put_int(b, s[S_WINPROBE]));
    TRY(PUTS(b, ",\"bad_checksums\":"));
    TRY(put_int(b, s[S_CHK]));
    TRY(PUTS(b, ",\"window\":"));
    TRY(has_w ? put_ll(b, w) : PUTS(b, "null"));
    TRY(PUTS(b, ",\"window_scaled\":"));
    TRY(has_w ? put_ll(b, wsc) : PUTS(b, "null"));
    TRY(PUTS(b, ",\"window_max_scaled\":"));
    TRY(put_ll(b, wmax));
    TRY(PUTS(b, ",\"window_scale\":"));
    TRY(wshift == Py_None ? PUTS(b, "null") : put_ll(b, shift));
    TRY(s[S_FIN_END] == Py_None ? PUTS(b, ",\"fin\":false") : PUTS(b, ",\"fin\":true"));
    TRY(PUTS(b, ",\"final_state\":"));
    if (s[S_STATE] == Py_None)
        return PUTS(b, "null}");
    TRY(PUTS(b, "\""));
    TRY(put_str(b, s[S_STATE]));
    return PUTS(b, "\"}");
}

/* ---- output.py: _conn_json_py ----------------------------------------------------------------------------------- */

static const char *const WHO_J[2] = {"orig", "resp"};

static int put_states(Buf *b, PyObject *tr, double ts)
{
    if (!PyList_CheckExact(tr))
        return UNSUPPORTED;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tr); i++) {
        PyObject *x = PyList_GET_ITEM(tr, i);
        if (!PyTuple_CheckExact(x) || PyTuple_GET_SIZE(x) != 4)
            return UNSUPPORTED;
        double t;
        int d;
        TRY(get_f(PyTuple_GET_ITEM(x, 0), &t));
        TRY(get_side(PyTuple_GET_ITEM(x, 1), &d));
        TRY(i ? PUTS(b, ",[") : PUTS(b, "["));
        TRY(put_f6(b, t - ts));
        TRY(PUTS(b, ",\""));
        TRY(put(b, WHO_J[d], 4));
        TRY(PUTS(b, "\",\""));
        TRY(put_str(b, PyTuple_GET_ITEM(x, 2)));
        TRY(PUTS(b, "\",\""));
        TRY(put_str(b, PyTuple_GET_ITEM(x, 3)));
        TRY(PUTS(b, "\"]"));
    }
    return 0;
}

static int put_handshake(Buf *b, PyObject **c)
{
    if (c[C_SYN_T] == Py_None || c[C_SYNACK_T] == Py_None)
        return PUTS(b, "null");
    double syn, sa, ack, last;
    TRY(get_f(c[C_SYN_T], &syn));
    TRY(get_f(c[C_SYNACK_T], &sa));
    TRY(PUTS(b, "{\"syn_to_synack\":"));
    TRY(put_f6(b, sa - syn));
    if (c[C_ACK_T] != Py_None) {
        TRY(get_f(c[C_ACK_T], &ack));
        TRY(PUTS(b, ",\"synack_to_ack\":"));
        TRY(put_f6(b, ack - sa));
        if (c[C_SYN_LAST_T] != Py_None) {
            TRY(get_f(c[C_SYN_LAST_T], &last));
            TRY(PUTS(b, ",\"rtt\":"));
            TRY(put_f6(b, ack - last));
        }
    }
    return PUTS(b, "}");
}

static int put_row(Buf *b, Row *r, PyObject *salt)
{
    PyObject **c = r->c;
    double ts, last;
    TRY(get_f(c[C_TS], &ts));
    TRY(get_f(c[C_LAST], &last));
    PyObject *hist = c[C_HIST];
    if (!PyList_CheckExact(hist) || !PyUnicode_CheckExact(c[C_END]))
        return UNSUPPORTED;
    if (c[C_PREV_N] != Py_None && !PyLong_CheckExact(c[C_PREV_N]))
        return UNSUPPORTED;
    if (c[C_RST_BY] != Py_None) {
        int by;
        TRY(get_side(c[C_RST_BY], &by));
        PyObject *rs = r->s[by][S_RST_STATE];
        if (rs != Py_None && !PyUnicode_CheckExact(rs))
            return UNSUPPORTED;
    }

    PyObject *tr = c[C_TRANSITIONS];
    if (PyList_CheckExact(tr)) /* the states' tuples, needed last: their misses overlap with the rest */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(tr); i++)
            __builtin_prefetch(PyList_GET_ITEM(tr, i));

    TRY(PUTS(b, "{\"n\":"));
    TRY(put_int(b, c[C_N]));
    TRY(PUTS(b, ",\"uid\":\""));
    TRY(put_uid(b, c[C_N], salt));
    TRY(PUTS(b, "\",\"ts\":"));
    TRY(put_repr(b, ts));
    TRY(PUTS(b, ",\"duration\":"));
    TRY(put_f6(b, last - ts));
    TRY(PUTS(b, ",\"orig_h\":\""));
    TRY(put_str(b, r->names[0]));
    TRY(PUTS(b, "\",\"orig_p\":"));
    TRY(put_ll(b, r->ep[0] & 0xFFFF));
    TRY(PUTS(b, ",\"resp_h\":\""));
    TRY(put_str(b, r->names[1]));
    TRY(PUTS(b, "\",\"resp_p\":"));
    TRY(put_ll(b, r->ep[1] & 0xFFFF));

    /* history: "".join(c.hist), written here and kept (by offset) for conn_state's RSTOS0 test */
    TRY(PUTS(b, ",\"conn_state\":\""));
    Py_ssize_t at_state = b->len;
    TRY(PUTS(b, "RSTOS0\",\"history\":\"")); /* room for the longest state, fixed up below */
    Py_ssize_t h0 = b->len;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hist); i++)
        TRY(put_str(b, PyList_GET_ITEM(hist, i)));
    Py_ssize_t hn = b->len - h0;
    const char *st;
    TRY(conn_state(r, b->p + h0, hn, &st));
    size_t sl = strlen(st);
    memmove(b->p + at_state + sl, b->p + at_state + 6, (size_t)(b->len - at_state - 6));
    memcpy(b->p + at_state, st, sl);
    b->len -= (Py_ssize_t)(6 - sl);

    int partial;
    TRY(get_bool(c[C_PARTIAL], &partial));
    TRY(partial ? PUTS(b, "\",\"partial\":true") : PUTS(b, "\",\"partial\":false"));
    TRY(PUTS(b, ",\"handshake\":"));
    TRY(put_handshake(b, c));
    TRY(PUTS(b, ",\"first_fin\":"));
    if (c[C_FIRST_FIN] == Py_None) {
        TRY(PUTS(b, "null"));
    } else {
        int d;
        TRY(get_side(c[C_FIRST_FIN], &d));
        TRY(d ? PUTS(b, "\"resp\"") : PUTS(b, "\"orig\""));
    }
    TRY(PUTS(b, ",\"time_wait\":["));
    int tw0 = is_str(r->s[0][S_STATE], "TIME_WAIT"), tw1 = is_str(r->s[1][S_STATE], "TIME_WAIT");
    TRY(tw0 ? (tw1 ? PUTS(b, "\"orig\",\"resp\"") : PUTS(b, "\"orig\"")) : (tw1 ? PUTS(b, "\"resp\"") : 0));
    TRY(PUTS(b, "],\"rst\":"));
    if (c[C_RST_BY] == Py_None) {
        TRY(PUTS(b, "null"));
    } else {
        int by;
        double t;
        TRY(get_side(c[C_RST_BY], &by));
        TRY(get_f_or0(r->s[by][S_RST_T], &t));
        TRY(by ? PUTS(b, "{\"by\":\"resp\",\"state\":") : PUTS(b, "{\"by\":\"orig\",\"state\":"));
        PyObject *rs = r->s[by][S_RST_STATE];
        if (rs == Py_None) {
            TRY(PUTS(b, "null"));
        } else {
            TRY(PUTS(b, "\""));
            TRY(put_str(b, rs));
            TRY(PUTS(b, "\""));
        }
        TRY(PUTS(b, ",\"t\":"));
        TRY(put_f6(b, t));
        TRY(PUTS(b, "}"));
    }
    TRY(PUTS(b, ",\"orig\":"));
    TRY(put_side(b, r, 0));
    TRY(PUTS(b, ",\"resp\":"));
    TRY(put_side(b, r, 1));
    TRY(PUTS(b, ",\"states\":["));
    TRY(put_states(b, c[C_TRANSITIONS], ts));
    TRY(PUTS(b, "],\"story\":\""));
    TRY(put_story(b, r, st));
    TRY(PUTS(b, "\",\"packets\":["));
    TRY(put_int(b, c[C_FIRST_INDEX]));
    TRY(PUTS(b, ","));
    TRY(put_int(b, c[C_LAST_INDEX]));
    TRY(PUTS(b, "],\"end\":\""));
    TRY(put_str(b, c[C_END]));
    TRY(PUTS(b, "\",\"continues\":"));
    TRY(c[C_PREV_N] == Py_None ? PUTS(b, "null") : put_int(b, c[C_PREV_N]));
    return PUTS(b, "}");
}

/* conn_json(c, name, salt=0) */
static PyObject *conn_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *c = NULL, *name = NULL, *salt = NULL;
    Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs < 1 || nargs > 3)
        goto usage;
    c = args[0];
    name = nargs > 1 ? args[1] : NULL;
    salt = nargs > 2 ? args[2] : NULL;
    for (Py_ssize_t i = 0; i < nk; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i), *v = args[nargs + i];
        if (is_str(k, "name") && name == NULL)
            name = v;
        else if (is_str(k, "salt") && salt == NULL)
            salt = v;
        else
            goto usage;
    }
    if (name == NULL)
        goto usage;
    PyObject *zero = NULL;
    if (salt == NULL)
        salt = zero = PyLong_FromLong(0);
    if (salt == NULL)
        return NULL;

    Buf b;
    b.p = b.stack;
    b.len = 0;
    b.cap = sizeof b.stack;
    b.wide = 0;
    Row r;
    r.names[0] = r.names[1] = NULL;
    PyObject *res = NULL;
    int rc = row_load(&r, c, name);
    if (rc == 0)
        rc = put_row(&b, &r, salt);
    if (rc == 0) {
        res = PyUnicode_New(b.len, b.wide ? 255 : 127);
        if (res != NULL)
            memcpy(PyUnicode_1BYTE_DATA(res), b.p, b.len);
    }
    else if (rc == UNSUPPORTED) {
        if (py_fallback == NULL)
            PyErr_SetString(PyExc_RuntimeError, "_rowjson.configure() was not called");
        else
            res = PyObject_CallFunctionObjArgs(py_fallback, c, name, salt, NULL);
    }
    Py_XDECREF(r.names[0]);
    Py_XDECREF(r.names[1]);
    if (b.p != b.stack)
        PyMem_Free(b.p);
    Py_XDECREF(zero);
    return res;
usage:
    PyErr_SetString(PyExc_TypeError, "conn_json(c, name, salt=0)");
    return NULL;
}

/* _format(x, p): the number formatters alone, for the tests to hold against Python's on any float:
 * p >= 0 f"{x:.<p>f}", -1 repr(x), -2 term.fmt_seconds(x) (ValueError where the row would go to Python). */
static PyObject *format_hook(PyObject *self, PyObject *args)
{
    double x;
    int p;
    if (!PyArg_ParseTuple(args, "di:_format", &x, &p))
        return NULL;
    Buf b;
    b.p = b.stack;
    b.len = 0;
    b.cap = sizeof b.stack;
    b.wide = 0;
    int rc = p >= 0 ? put_fixed(&b, x, p) : p == -1 ? put_repr(&b, x) : put_seconds(&b, x);
    PyObject *res = NULL;
    if (rc == UNSUPPORTED)
        PyErr_SetString(PyExc_ValueError, "not modelled natively");
    else if (rc == 0)
        res = PyUnicode_DecodeLatin1(b.p, b.len, NULL);
    if (b.p != b.stack)
        PyMem_Free(b.p);
    return res;
}

static PyMethodDef methods[] = {
    {"conn_json", (PyCFunction)(void (*)(void))conn_json, METH_FASTCALL | METH_KEYWORDS,
     "conn_json(c, name, salt=0) -> str: output._conn_json_py, natively."},
    {"configure", configure, METH_VARARGS,
     "configure(Conn, Side, fallback): the classes read natively and the Python function for everything else."},
    {"_format", format_hook, METH_VARARGS, "_format(x, p): the float formatters alone (tests)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowjson", NULL, -1, methods};

PyMODINIT_FUNC PyInit__rowjson(void)
{
    empty_str = PyUnicode_InternFromString("");
    if (empty_str == NULL)
        return NULL;
    return PyModule_Create(&module);
}
