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
 *     parse_message(data, masked, max_size) -> str | bytes | None
 *     encode_message(message, key, limit) -> bytes | None
 *                                  the two ends of the hot path of a request/response
 *                                  peer: one whole small frame read, one written; each is
 *                                  frames._parse_message_python / _encode_message_python
 *                                  in C, returning exactly what those return
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

/* frames._parse_message_python in C: `data` is exactly one whole frame, FIN set, no RSV
 * bit, text or binary, with a 7- or 16-bit length (RFC 6455 §5.2), masked if and only if
 * `masked` (§5.1), its payload at most max_size (None: no limit). Then the payload comes
 * back unmasked (§5.3): bytes for binary, str for text that is valid UTF-8 (§8.1).
 * Anything else returns None, and the caller parses the data the long way. */
static PyObject *
speedups_parse_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const unsigned char *data;
    Py_ssize_t size, length, start = 2, limit = 0;
    int masked, text, is_bytes, limited = args[2] != Py_None;
    PyObject *result = NULL;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "parse_message() takes exactly 3 arguments (data, masked, max_size)");
        return NULL;
    }
    masked = PyObject_IsTrue(args[1]);
    if (masked < 0) {
        return NULL;
    }
    if (limited) {
        limit = PyLong_AsSsize_t(args[2]);
        if (limit == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    is_bytes = PyBytes_CheckExact(args[0]);
    if (is_bytes) {
        data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
        size = PyBytes_GET_SIZE(args[0]);
    } else {
        if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        data = (const unsigned char *)view.buf;
        size = view.len;
    }
    if (size < 2 || (data[0] != 0x82 && data[0] != 0x81) || (data[1] >= 0x80) != masked) {
        goto none;
    }
    text = data[0] == 0x81;
    length = data[1] & 0x7F;
    if (length >= 126) {
        if (length == 127 || size < 4) {
            goto none;
        }
        length = (Py_ssize_t)data[2] << 8 | data[3];
        start = 4;
    }
    if (masked) {
        start += 4;
    }
    if (size != start + length || (limited && length > limit)) {
        goto none;
    }
    if (!masked) {
        result = text ? PyUnicode_DecodeUTF8((const char *)data + start, length, "strict")
                      : PyBytes_FromStringAndSize((const char *)data + start, length);
    } else if (!text) {
        result = PyBytes_FromStringAndSize(NULL, length);
        if (result != NULL) {
            xor_into((unsigned char *)PyBytes_AS_STRING(result), data + start, length,
                     data + start - 4);
        }
    } else {
        unsigned char small[1024];
        unsigned char *plain = length <= (Py_ssize_t)sizeof(small) ? small
                                                                  : PyMem_Malloc(length);
        if (plain == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        xor_into(plain, data + start, length, data + start - 4);
        result = PyUnicode_DecodeUTF8((const char *)plain, length, "strict");
        if (plain != small) {
            PyMem_Free(plain);
        }
    }
    if (result == NULL && text && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();  /* not UTF-8: the long way fails the connection with 1007 */
        goto none;
    }
    goto done;
none:
    result = Py_NewRef(Py_None);
done:
    if (!is_bytes) {
        PyBuffer_Release(&view);
    }
    return result;
}

/* frames._encode_message_python in C: the one frame of a data message (a str goes as
 * text, exactly bytes as binary; anything else returns None), header and payload joined,
 * masked with `key` (4 bytes) or unmasked when key is None (RFC 6455 §5.2, §5.3); None
 * when the payload is `limit` bytes or longer. */
static PyObject *
speedups_encode_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *message, *encoded = NULL, *result = NULL;
    const unsigned char *payload;
    const unsigned char *key = NULL;
    unsigned char *out;
    Py_ssize_t length, limit, header;
    unsigned char first;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_message() takes exactly 3 arguments (message, key, limit)");
        return NULL;
    }
    message = args[0];
    if (args[1] != Py_None) {
        if (!PyBytes_CheckExact(args[1]) || PyBytes_GET_SIZE(args[1]) != 4) {
            PyErr_SetString(PyExc_ValueError, "the masking key must be 4 bytes");
            return NULL;
        }
        key = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    }
    limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (PyBytes_CheckExact(message)) {
        first = 0x82;
        payload = (const unsigned char *)PyBytes_AS_STRING(message);
        length = PyBytes_GET_SIZE(message);
    } else if (PyUnicode_CheckExact(message)) {
        first = 0x81;
        if (PyUnicode_IS_COMPACT_ASCII(message)) {  /* its characters are its UTF-8 */
            payload = (const unsigned char *)PyUnicode_DATA(message);
            length = PyUnicode_GET_LENGTH(message);
        } else {
            if (PyUnicode_GET_LENGTH(message) >= limit) {
                Py_RETURN_NONE;  /* at least as many octets as characters */
            }
            encoded = PyUnicode_AsUTF8String(message);
            if (encoded == NULL) {
                return NULL;  /* a lone surrogate: as str.encode("utf-8") */
            }
            payload = (const unsigned char *)PyBytes_AS_STRING(encoded);
            length = PyBytes_GET_SIZE(encoded);
        }
    } else {
        Py_RETURN_NONE;
    }
    if (length >= limit) {
        Py_XDECREF(encoded);
        Py_RETURN_NONE;
    }
    header = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
    result = PyBytes_FromStringAndSize(NULL, header + (key ? 4 : 0) + length);
    if (result != NULL) {
        out = (unsigned char *)PyBytes_AS_STRING(result);
        out[0] = first;
        if (header == 2) {
            out[1] = (unsigned char)length;
        } else if (header == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(length >> 8);
            out[3] = (unsigned char)length;
        } else {
            out[1] = 127;
            for (int j = 0; j < 8; j++) {
                out[2 + j] = (unsigned char)((uint64_t)length >> (56 - 8 * j));
            }
        }
        if (key) {
            out[1] |= 0x80;
            memcpy(out + header, key, 4);
            xor_into(out + header + 4, payload, length, key);
        } else {
            memcpy(out + header, payload, length);
        }
    }
    Py_XDECREF(encoded);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))speedups_mask, METH_FASTCALL,
     "mask(data, key) -> bytes: XOR data with the 4-byte key repeated (RFC 6455 §5.3)."},
    {"alloc", (PyCFunction)speedups_alloc, METH_O,
     "alloc(n) -> bytes: n octets not yet filled, for mask_into() to fill before use."},
    {"mask_into", (PyCFunction)(void (*)(void))speedups_mask_into, METH_FASTCALL,
     "mask_into(target, offset, data, key): target[offset + i] = data[i] ^ key[(offset + i) % 4]; "
     "a copy when key is None."},
    {"parse_message", (PyCFunction)(void (*)(void))speedups_parse_message, METH_FASTCALL,
     "parse_message(data, masked, max_size) -> str | bytes | None: the message of a whole "
     "small frame (frames._parse_message_python)."},
    {"encode_message", (PyCFunction)(void (*)(void))speedups_encode_message, METH_FASTCALL,
     "encode_message(message, key, limit) -> bytes | None: the whole frame of a small "
     "message (frames._encode_message_python)."},
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
