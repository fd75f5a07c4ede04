/* fastim.ws._speedups: WebSocket masking in C (RFC 6455 §5.3), optional.
 *
 * setup.py builds this where a C compiler is present; fastim.ws.frames uses it when it
 * imports and falls back to its pure-Python masking otherwise (or when the environment
 * sets FASTIM_WS_SPEEDUPS=0). It does three things:
 *
 *     mask(data, key) -> bytes     octet i of data XOR octet i % 4 of the 4-byte key
 *     alloc(n) -> bytes            a bytes object of n octets, not yet filled
 *     mask_into(target, offset, data, key)
 *                                  target[offset + i] = data[i] XOR key[(offset + i) % 4]
 *                                  (a plain copy when key is None)
 *
 * alloc and mask_into let the frame decoder receive a large payload straight into the
 * bytes object that becomes the message, unmasking each read as it arrives: no receive
 * buffer growing to the frame's size, no second copy at the end. A bytes object is
 * immutable once shared; the decoder fills only the ones alloc made for it and hands
 * each out once it is full, so nobody ever sees one change.
 *
 * `data` is any contiguous buffer (bytes, bytearray, memoryview). The loop works on 8 bytes
 * at a time (the key repeated twice), which compilers vectorise further; memcpy keeps it
 * free of alignment assumptions.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* RFC 6455 §5.3: dst[i] = src[i] ^ k[i % 4], eight bytes at a time. */
static void
xor_into(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char k[4])
{
    Py_ssize_t i = 0;
    unsigned char key8[8];
    uint64_t key64, word;

    for (int j = 0; j < 8; j++) {
        key8[j] = k[j & 3];
    }
    memcpy(&key64, key8, 8);
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, src + i, 8);
        word ^= key64;
        memcpy(dst + i, &word, 8);
    }
    for (; i < n; i++) {
        dst[i] = src[i] ^ k[i & 3];
    }
}

static PyObject *
speedups_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    PyObject *result = NULL;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "mask() takes exactly 2 arguments (data, key)");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes long");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, data.len);
    if (result == NULL) {
        goto done;
    }
    xor_into((unsigned char *)PyBytes_AS_STRING(result), (const unsigned char *)data.buf,
             data.len, (const unsigned char *)key.buf);
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}


static PyObject *
speedups_alloc(PyObject *module, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);

    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "alloc() needs a size >= 0");
        return NULL;
    }
    return PyBytes_FromStringAndSize(NULL, n);
}

static PyObject *
speedups_mask_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, key;
    PyObject *target;
    Py_ssize_t offset, size;
    unsigned char *dst;
    int keyed;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "mask_into() takes exactly 4 arguments (target, offset, data, key)");
        return NULL;
    }
    target = args[0];
    if (PyBytes_CheckExact(target)) {
        dst = (unsigned char *)PyBytes_AS_STRING(target);
        size = PyBytes_GET_SIZE(target);
    } else if (PyByteArray_CheckExact(target)) {
        dst = (unsigned char *)PyByteArray_AS_STRING(target);
        size = PyByteArray_GET_SIZE(target);
    } else {
        PyErr_SetString(PyExc_TypeError, "mask_into() writes into bytes or bytearray");
        return NULL;
    }
    offset = PyLong_AsSsize_t(args[1]);
    if (offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    keyed = args[3] != Py_None;
    if (keyed && PyObject_GetBuffer(args[3], &key, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (keyed && key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes long");
    } else if (offset < 0 || data.len > size - offset) {
        PyErr_SetString(PyExc_ValueError, "mask_into() past the end of its target");
    } else if (keyed) {
        const unsigned char *k = (const unsigned char *)key.buf;
        unsigned char rotated[4];
        for (int j = 0; j < 4; j++) {
            rotated[j] = k[(offset + j) & 3];  /* octet offset + i takes key[(offset + i) % 4] */
        }
        xor_into(dst + offset, (const unsigned char *)data.buf, data.len, rotated);
    } else {
        memcpy(dst + offset, data.buf, data.len);
    }
    if (keyed) {
        PyBuffer_Release(&key);
    }
    PyBuffer_Release(&data);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL,
     "mask(data, key) -> bytes: XOR data with the 4-byte key repeated (RFC 6455 §5.3)."},
    {"alloc", (PyCFunction)speedups_alloc, METH_O,
     "alloc(n) -> bytes: n octets not yet filled, for mask_into() to fill before use."},
    {"mask_into", (PyCFunction)(void (*)(void))speedups_mask_into, METH_FASTCALL,
     "mask_into(target, offset, data, key): target[offset + i] = data[i] ^ key[(offset + i) % 4]; "
     "a copy when key is None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "fastim.ws._speedups",
    "Optional C masking for fastim.ws (RFC 6455 §5.3).",
    0,
    speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
