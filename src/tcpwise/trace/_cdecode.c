/* Native kernels of trace's reader and decoder: the two loops numpy cannot vectorise well.
 *
 * walk_pcap      the pcap record walk (each record header says where the next one starts, so it is
 *                sequential by nature); mirrors Capture._walk_pcap in reader.py.
 * segment_sums   the sum of each TCP segment's big-endian 16-bit words for the checksum check; mirrors
 *                decode._segment_sums (RFC 1071: the sum is taken here, folded and compared in Python).
 *
 * Both are pure functions of their inputs; the Python versions stay as the reference and run when this module
 * is missing or TCPWISE_NATIVE=0 (tests/trace/test_trace_native_decode.py holds the two equal).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* walk_pcap(data, off, end, batch, big_endian, max_caplen) -> (offsets: bytes, headers: bytes, next, bad)
 *
 * Up to `batch` complete records from byte `off` of `data[:end]`: `offsets` holds each record's offset as
 * native int64, `headers` its 16-byte record header as it is in the file (ts, ts fraction, caplen, origlen).
 * `next` is where the walk stopped; `bad` is a captured length above `max_caplen` found at `next`, else -1. */
static PyObject *walk_pcap(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t off, end, batch;
    int big;
    long long max_caplen;
    if (!PyArg_ParseTuple(args, "y*nnnpL", &view, &off, &end, &batch, &big, &max_caplen))
        return NULL;
    if (end > view.len)
        end = view.len;
    if (off < 0 || batch < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "walk_pcap: negative offset or batch");
        return NULL;
    }
    const uint8_t *d = (const uint8_t *)view.buf;
    PyObject *offs = PyBytes_FromStringAndSize(NULL, batch * (Py_ssize_t)sizeof(int64_t));
    PyObject *hdrs = PyBytes_FromStringAndSize(NULL, batch * 16);
    if (offs == NULL || hdrs == NULL) {
        Py_XDECREF(offs);
        Py_XDECREF(hdrs);
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t *po = (int64_t *)PyBytes_AS_STRING(offs);
    uint8_t *ph = (uint8_t *)PyBytes_AS_STRING(hdrs);
    Py_ssize_t n = 0;
    long long bad = -1;
    while (n < batch && off <= end - 16) {
        const uint8_t *h = d + off;
        uint32_t cl = big ? ((uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11])
                          : ((uint32_t)h[11] << 24 | (uint32_t)h[10] << 16 | (uint32_t)h[9] << 8 | h[8]);
        if ((long long)cl > max_caplen) {
            bad = cl;
            break;
        }
        Py_ssize_t nxt = off + 16 + (Py_ssize_t)cl;
        if (nxt > end)
            break;
        po[n] = off;
        memcpy(ph + n * 16, h, 16);
        n++;
        off = nxt;
    }
    PyBuffer_Release(&view);
    /* Shrink to what was walked (a fresh bytes object is simplest and costs one copy of a short tail batch). */
    if (n < batch) {
        PyObject *o2 = PyBytes_FromStringAndSize(PyBytes_AS_STRING(offs), n * (Py_ssize_t)sizeof(int64_t));
        PyObject *h2 = PyBytes_FromStringAndSize(PyBytes_AS_STRING(hdrs), n * 16);
        Py_DECREF(offs);
        Py_DECREF(hdrs);
        if (o2 == NULL || h2 == NULL) {
            Py_XDECREF(o2);
            Py_XDECREF(h2);
            return NULL;
        }
        offs = o2;
        hdrs = h2;
    }
    return Py_BuildValue("(NNnL)", offs, hdrs, off, bad);
}

/* segment_sums(buf, start, length) -> bytes of int64: for each row, the sum of the big-endian 16-bit words of
 * buf[start:start+length], an odd last byte padded with a zero byte (RFC 9293 §3.1). `start` and `length` are
 * contiguous int64 buffers of the same size. Bytes past the end of `buf` count as zero, as the zero-filled
 * region of the numpy version does (the decoder only asks for fully captured segments). */
static PyObject *segment_sums(PyObject *self, PyObject *args) {
    Py_buffer b, s, l;
    if (!PyArg_ParseTuple(args, "y*y*y*", &b, &s, &l))
        return NULL;
    PyObject *out = NULL;
    if (s.len != l.len || s.len % (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "segment_sums: start and length must be int64 arrays of one size");
        goto done;
    }
    Py_ssize_t n = s.len / (Py_ssize_t)sizeof(int64_t);
    out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL)
        goto done;
    const uint8_t *d = (const uint8_t *)b.buf;
    const int64_t *ps = (const int64_t *)s.buf, *pl = (const int64_t *)l.buf;
    int64_t *po = (int64_t *)PyBytes_AS_STRING(out);
    Py_ssize_t size = b.len;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t a = ps[i], ln = pl[i];
        uint64_t sum = 0;
        if (a < 0 || ln <= 0) {
            po[i] = 0;
            continue;
        }
        int64_t stop = a + ln; /* exclusive; clamp reads to the buffer */
        int64_t full = a + (ln & ~(int64_t)1);
        int64_t k = a;
        for (; k < full && k + 1 < size; k += 2)
            sum += (uint32_t)d[k] << 8 | d[k + 1];
        for (; k < full; k += 2) /* a word running past the buffer: only its first byte can be inside */
            sum += (uint32_t)(k < size ? d[k] : 0) << 8;
        if (ln & 1 && stop - 1 < size)
            sum += (uint32_t)d[stop - 1] << 8;
        po[i] = (int64_t)sum;
    }
done:
    PyBuffer_Release(&b);
    PyBuffer_Release(&s);
    PyBuffer_Release(&l);
    return out;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS, "The pcap record walk of reader.Capture._walk_pcap."},
    {"segment_sums", segment_sums, METH_VARARGS, "Per-segment 16-bit word sums of decode._segment_sums."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cdecode", NULL, -1, methods};

PyMODINIT_FUNC PyInit__cdecode(void) { return PyModule_Create(&module); }
