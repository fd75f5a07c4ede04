/* fastim.ws._speedups: masking in C (RFC 6455 §5.3) and the hot path's helpers; optional.
 *
 * setup.py builds this where a C compiler is present; fastim.ws.frames uses it when it
 * imports and falls back to its pure-Python masking otherwise (or when the environment
 * sets FASTIM_WS_SPEEDUPS=0). It does these things:
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
 *     done(value) -> Done          an awaitable already finished with value
 *                                  (awaitables.Done in C: what send() returns when it
 *                                  has nothing to wait for)
 *     hand_over(waiter, message, loop) -> bool
 *                                  a message given to the task awaiting it, run at once
 *                                  (connection._hand_over_python in C)
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

/* done(value): an awaitable that has already finished with `value` (awaitables.Done in
 * C). `await` on it gives the value at once, without the coroutine object, frame and
 * finalizer an `async def` returning at once costs. It is also a collections.abc.Coroutine
 * (send, throw, close), so asyncio.create_task() and ensure_future() take it as they take
 * a coroutine. Holding nothing but the value, one object can be awaited any number of
 * times. */
typedef struct {
    PyObject_HEAD
    PyObject *value;
} DoneObject;

static PyTypeObject DoneType;

static PyObject *
done_new_with(PyObject *value)
{
    DoneObject *self = PyObject_GC_New(DoneObject, &DoneType);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(value);
    self->value = value;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
done_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *value = Py_None;
    static char *names[] = {"value", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:Done", names, &value)) {
        return NULL;
    }
    return done_new_with(value);
}

static int
done_traverse(DoneObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->value);
    return 0;
}

static int
done_clear(DoneObject *self)
{
    Py_CLEAR(self->value);
    return 0;
}

static void
done_dealloc(DoneObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->value);
    PyObject_GC_Del(self);
}

static PyObject *
done_self(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

/* StopIteration carrying the value, as a coroutine's return does (a tuple or an
 * exception as the value must not be taken for the exception's arguments). */
static PyObject *
done_stop(DoneObject *self)
{
    if (self->value == Py_None) {
        PyErr_SetNone(PyExc_StopIteration);
    } else {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, self->value);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *
done_iternext(DoneObject *self)
{
    if (self->value == Py_None) {
        return NULL;  /* exhausted, no exception set: StopIteration with None */
    }
    return done_stop(self);
}

/* The `await` fast path (PyIter_Send): the value, with no exception at all. */
static PySendResult
done_am_send(DoneObject *self, PyObject *arg, PyObject **result)
{
    Py_INCREF(self->value);
    *result = self->value;
    return PYGEN_RETURN;
}

static PyObject *
done_send(DoneObject *self, PyObject *arg)
{
    return done_stop(self);
}

/* throw(exception) or throw(type[, value[, traceback]]): raised here, as a coroutine
 * that has finished raises what is thrown into it. */
static PyObject *
done_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *exc = args[0];
    if (PyExceptionInstance_Check(exc)) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    } else if (PyExceptionClass_Check(exc)) {
        PyErr_SetObject(exc, nargs > 1 ? args[1] : NULL);
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *
done_close(PyObject *self, PyObject *unused)
{
    Py_RETURN_NONE;
}

static PyMethodDef done_methods[] = {
    {"send", (PyCFunction)done_send, METH_O, "send(value): raises StopIteration(self.value)."},
    {"throw", (PyCFunction)(void (*)(void))done_throw, METH_FASTCALL,
     "throw(exception): raises it."},
    {"close", (PyCFunction)done_close, METH_NOARGS, "close(): nothing to do."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods done_async = {
    .am_await = done_self,
    .am_send = (sendfunc)done_am_send,
};

static PyTypeObject DoneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "fastim.ws._speedups.Done",
    .tp_doc = "Done(value=None): an awaitable that has already finished with value.",
    .tp_basicsize = sizeof(DoneObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = done_tp_new,
    .tp_dealloc = (destructor)done_dealloc,
    .tp_traverse = (traverseproc)done_traverse,
    .tp_clear = (inquiry)done_clear,
    .tp_as_async = &done_async,
    .tp_iter = done_self,
    .tp_iternext = (iternextfunc)done_iternext,
    .tp_methods = done_methods,
};

static PyObject *
speedups_done(PyObject *module, PyObject *value)
{
    return done_new_with(value);
}

/* hand_over(waiter, message, loop) -> bool: connection._hand_over_python in C. When the
 * future `waiter` has one done callback (the wake-up of the task awaiting it), sets its
 * result to `message` and runs that callback now, in its context, rather than letting
 * set_result() schedule it with loop.call_soon(); asyncio refuses to enter a task while
 * another runs (RuntimeError, before the task's step), and then the callback goes to
 * call_soon after all. False, touching nothing, when the waiter has no callback (its
 * task was cancelled) or several. */
static PyObject *str_callbacks, *str_remove_done_callback, *str_set_result, *str_call_soon;
static PyObject *context_kwnames;

static PyObject *
speedups_hand_over(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *waiter, *message, *loop, *callbacks, *pair, *wakeup, *context, *result;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "hand_over(waiter, message, loop)");
        return NULL;
    }
    waiter = args[0];
    message = args[1];
    loop = args[2];
    callbacks = PyObject_GetAttr(waiter, str_callbacks);
    if (callbacks == NULL) {
        return NULL;
    }
    if (!PyList_Check(callbacks) || PyList_GET_SIZE(callbacks) != 1
            || !PyTuple_Check(PyList_GET_ITEM(callbacks, 0))
            || PyTuple_GET_SIZE(PyList_GET_ITEM(callbacks, 0)) != 2) {
        Py_DECREF(callbacks);
        Py_RETURN_FALSE;
    }
    pair = PyList_GET_ITEM(callbacks, 0);
    wakeup = PyTuple_GET_ITEM(pair, 0);
    context = PyTuple_GET_ITEM(pair, 1);
    Py_INCREF(wakeup);
    Py_INCREF(context);
    Py_DECREF(callbacks);

    result = PyObject_CallMethodOneArg(waiter, str_remove_done_callback, wakeup);
    if (result == NULL) {
        goto error;
    }
    Py_DECREF(result);
    result = PyObject_CallMethodOneArg(waiter, str_set_result, message);
    if (result == NULL) {
        goto error;
    }
    Py_DECREF(result);

    if (PyContext_CheckExact(context)) {
        if (PyContext_Enter(context) == 0) {
            result = PyObject_CallOneArg(wakeup, waiter);
            if (PyContext_Exit(context) < 0) {
                Py_XDECREF(result);
                goto error;
            }
            if (result != NULL) {
                Py_DECREF(result);
                goto done;
            }
        }
        /* RuntimeError: the context is entered elsewhere, or a task is running. */
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            goto error;
        }
        PyErr_Clear();
    }
    /* The loop's way: loop.call_soon(wakeup, waiter, context=context). */
    {
        PyObject *call_soon = PyObject_GetAttr(loop, str_call_soon);
        if (call_soon == NULL) {
            goto error;
        }
        PyObject *call_args[4] = {NULL, wakeup, waiter, context};
        result = PyObject_Vectorcall(call_soon, call_args + 1,
                                     2 | PY_VECTORCALL_ARGUMENTS_OFFSET, context_kwnames);
        Py_DECREF(call_soon);
        if (result == NULL) {
            goto error;
        }
        Py_DECREF(result);
    }
done:
    Py_DECREF(wakeup);
    Py_DECREF(context);
    Py_RETURN_TRUE;
error:
    Py_DECREF(wakeup);
    Py_DECREF(context);
    return NULL;
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
    {"done", (PyCFunction)speedups_done, METH_O,
     "done(value) -> Done: an awaitable that has already finished with value."},
    {"hand_over", (PyCFunction)(void (*)(void))speedups_hand_over, METH_FASTCALL,
     "hand_over(waiter, message, loop) -> bool: give the task awaiting waiter its message "
     "and run it now (connection._hand_over_python)."},
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
    str_callbacks = PyUnicode_InternFromString("_callbacks");
    str_remove_done_callback = PyUnicode_InternFromString("remove_done_callback");
    str_set_result = PyUnicode_InternFromString("set_result");
    str_call_soon = PyUnicode_InternFromString("call_soon");
    context_kwnames = Py_BuildValue("(s)", "context");
    if (str_callbacks == NULL || str_remove_done_callback == NULL || str_set_result == NULL
            || str_call_soon == NULL || context_kwnames == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyType_Ready(&DoneType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    Py_INCREF(&DoneType);
    if (PyModule_AddObject(module, "Done", (PyObject *)&DoneType) < 0) {
        Py_DECREF(&DoneType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
