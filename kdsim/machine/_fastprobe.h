/* A CPython fast-call entry for Machine.translate_pa, compiled into the cffi module.
 *
 * Why: a cffi call with two arguments costs ~150 ns here (argument tuple, GIL
 * release and re-acquire, errno save); the probe itself ~10 ns.  A METH_FASTCALL
 * builtin bound to the machine costs ~40 ns, which is what a hot Python loop of
 * single translations needs.  Everything else goes through cffi.
 *
 * kd_py_bind_probe is called through cffi (so without the GIL, which it takes).
 * Python objects cross as their CPython addresses (id()): out_list receives the
 * builtin, err_cls is the exception class raised for an address out of range.
 * The builtin holds a reference to the machine (kd_machine_retain), so it stays
 * valid after the Machine object is gone. */
#include <Python.h>

typedef struct {
    kd_machine *m;
    PyObject *err_cls;
} kd_py_probe_ctx;

static void kd_py_probe_release(PyObject *capsule)
{
    kd_py_probe_ctx *c = PyCapsule_GetPointer(capsule, NULL);
    if (c) {
        kd_machine_free(c->m);
        Py_XDECREF(c->err_cls);
        PyMem_Free(c);
    }
}

static PyObject *kd_py_probe(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "translate_pa(va) takes exactly one address");
        return NULL;
    }
    kd_py_probe_ctx *c = PyCapsule_GetPointer(self, NULL);
    if (!c)
        return NULL;
    uint64_t va = PyLong_AsUnsignedLongLong(args[0]);
    if (va == (uint64_t)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;  /* not an int: the TypeError stands */
        PyErr_Clear();
        PyObject *e = PyObject_CallFunction(c->err_cls, "is", KD_E_RANGE, "virtual address");
        if (e) {
            PyErr_SetObject(c->err_cls, e);
            Py_DECREF(e);
        }
        return NULL;
    }
    uint64_t pa = kd_probe_pa(c->m, va);
    if (pa == KD_BAD_PA)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(pa);
}

static PyMethodDef kd_py_probe_def = {
    "translate_pa", (PyCFunction)(void (*)(void))kd_py_probe, METH_FASTCALL,
    "translate_pa(va) -> int | None: kernel-read probe of va, its physical address or None.",
};

int kd_py_bind_probe(kd_machine *m, uintptr_t out_list, uintptr_t err_cls)
{
    if (!m || !out_list || !err_cls)
        return KD_E_INVAL;
    PyGILState_STATE g = PyGILState_Ensure();
    int st = KD_E_NOMEM;
    kd_py_probe_ctx *c = PyMem_Malloc(sizeof *c);
    if (c) {
        c->m = m;
        c->err_cls = (PyObject *)err_cls;
        PyObject *cap = PyCapsule_New(c, NULL, kd_py_probe_release);
        if (!cap) {
            PyMem_Free(c);
        } else {
            kd_machine_retain(m);
            Py_INCREF(c->err_cls);
            PyObject *fn = PyCFunction_New(&kd_py_probe_def, cap);
            Py_DECREF(cap);  /* the function holds it now */
            if (fn) {
                st = PyList_Append((PyObject *)out_list, fn) == 0 ? KD_OK : KD_E_NOMEM;
                Py_DECREF(fn);
            }
        }
    }
    if (PyErr_Occurred())
        PyErr_Clear();
    PyGILState_Release(g);
    return st;
}
