/* fastim.ws._speedups: WebSocket masking in C (RFC 6455 §5.3), optional.
 *
 * setup.py builds this where a C compiler is present; fastim.ws.frames uses it when it
 * imports and falls back to its pure-Python masking otherwise (or when the environment
 * sets FASTIM_WS_SPEEDUPS=0). It does one thing:
 *
 *     mask(data, key) -> bytes     octet i of data XOR octet i % 4 of the 4-byte key
 *
 * `data` is any contiguous buffer (bytes, bytearray, memoryview). The loop works on 8 bytes
 * at a time (the key repeated twice), which compilers vectorise further; memcpy keeps it
 * free of alignment assumptions.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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
    {
        const unsigned char *src = (const unsigned char *)data.buf;
        const unsigned char *k = (const unsigned char *)key.buf;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        Py_ssize_t n = data.len, i = 0;
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
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL,
     "mask(data, key) -> bytes: XOR data with the 4-byte key repeated (RFC 6455 §5.3)."},
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
