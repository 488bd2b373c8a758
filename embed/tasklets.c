/* Listing every tasklet of every thread (carbon_list_tasklets): label,
 * state, thread, time and stack, for debug overlays and crash reports. The
 * Python side is scheduler.format_tasklet_stacks(all_threads=True). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

long long (*cb_embed_tasklet_time_hook)(cb_tasklet *t);

static PyObject *str_attr(PyObject *o, const char *name)
{
    PyObject *v = PyObject_GetAttrString(o, name);

    if (v && PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) > 0)
        return v;
    Py_XDECREF(v);
    PyErr_Clear();
    return NULL;
}

PyObject *cb_embed_tasklet_label(cb_tasklet *t)
{
    PyObject *name = str_attr((PyObject *)t, "name"), *qual = NULL, *mod;

    if (name)
        return name;
    if (t->is_main)
        return PyUnicode_FromString("main");
    if (t->callable)
        qual = str_attr(t->callable, "__qualname__");
    if (!qual && t->method_name && PyUnicode_Check(t->method_name))
        qual = Py_NewRef(t->method_name);
    if (!qual)
        return PyUnicode_FromString("unbound");
    mod = t->module_name && PyUnicode_Check(t->module_name) ? t->module_name : NULL;
    if (mod && PyUnicode_CompareWithASCIIString(mod, "unknown_module") != 0) {
        PyObject *s = PyUnicode_FromFormat("%U.%U", mod, qual);
        Py_DECREF(qual);
        return s;
    }
    return qual;
}

char *cb_embed_tasklet_stack(cb_tasklet *t)
{
    PyObject *saved = cb_err_fetch();
    PyObject *frame = cb_tasklet_frame(t), *tb = NULL, *lines = NULL, *sep = NULL, *text = NULL;
    const char *u = NULL;
    char *out = NULL;

    if (frame && frame != Py_None && (tb = PyImport_ImportModule("traceback")))
        lines = PyObject_CallMethod(tb, "format_stack", "O", frame);
    if (lines && (sep = PyUnicode_FromString("")))
        text = PyUnicode_Join(sep, lines);
    if (text)
        u = PyUnicode_AsUTF8(text);
    if (u) {
        size_t n = strlen(u) + 1;
        if ((out = PyMem_Malloc(n)))
            memcpy(out, u, n);
    }
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
    Py_XDECREF(frame);
    PyErr_Clear();
    cb_err_restore(saved);
    return out;
}

static const char *state_of(cb_tasklet *t)
{
    if (t->mgr && t == t->mgr->current)
        return "running";
    if (t->chan)
        return "blocked";
    if (t->node.next && !t->is_main)
        return "runnable";
    return "waiting";
}

static char *dup_py(PyObject *s)
{
    const char *u = s ? PyUnicode_AsUTF8(s) : NULL;

    PyErr_Clear();
    return strdup(u ? u : "?");
}

static char *dup_pymem(char *s)
{
    char *out = strdup(s ? s : "");

    PyMem_Free(s);
    return out;
}

void carbon_tasklets_free(carbon_tasklet_info *list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++) {
        free(list[i].label);
        free(list[i].stack);
    }
    free(list);
}

int carbon_list_tasklets(carbon_tasklet_info **out, size_t *count)
{
    carbon_tasklet_info *v;
    cb_tasklet **ts;
    size_t n = 0, i = 0;
    long long now = cb_monotonic_ns();
    cb_manager *host;
    int rc = CARBON_OK;

    if (out)
        *out = NULL;
    if (count)
        *count = 0;
    if (!out || !count)
        return cb_embed_fail(CARBON_EINVAL, "carbon_list_tasklets: out and count must not be NULL");
    if ((rc = cb_embed_host_enter("carbon_list_tasklets")) != CARBON_OK)
        return rc;
    host = cb_manager_peek();
    /* First the snapshot, with no Python code run (so no other thread can
     * take the GIL and change the lists while we walk them): the tasklets
     * (referenced), their thread and state. Labels and stacks run Python
     * code (traceback), so they come after. */
    for (cb_manager *m = cb_g.all_managers; m; m = m->all_next)
        for (cb_tasklet *t = m->all; t; t = t->mgr_next)
            if (t->is_main || t->alive)
                n++;
    v = calloc(n ? n : 1, sizeof *v);
    ts = calloc(n ? n : 1, sizeof *ts);
    if (!v || !ts) {
        free(v);
        free(ts);
        return cb_embed_host_leave(cb_embed_fail(CARBON_ENOMEM, "carbon_list_tasklets: out of memory"));
    }
    for (cb_manager *m = cb_g.all_managers; m; m = m->all_next) {
        for (cb_tasklet *t = m->all; t && i < n; t = t->mgr_next) {
            if (!t->is_main && !t->alive)
                continue;
            ts[i] = (cb_tasklet *)Py_NewRef((PyObject *)t);
            v[i].state = state_of(t);
            v[i].thread_id = (uint64_t)m->thread_id;
            v[i].is_main = t->is_main;
            v[i].is_host_thread = m == host;
            v[i].time_ns = cb_embed_tasklet_time_hook ? cb_embed_tasklet_time_hook(t) : -1;
            v[i].age_ns = t->started && t->start_time ? now - t->start_time : -1;
            i++;
        }
    }
    n = i;
    for (i = 0; i < n; i++) {
        PyObject *label = cb_embed_tasklet_label(ts[i]);
        v[i].label = dup_py(label);
        Py_XDECREF(label);
        v[i].stack = dup_pymem(cb_embed_tasklet_stack(ts[i]));
        if (!v[i].label || !v[i].stack)
            rc = CARBON_ENOMEM;
    }
    for (i = 0; i < n; i++)
        Py_DECREF(ts[i]);
    free(ts);
    if (rc != CARBON_OK) {
        carbon_tasklets_free(v, n);
        return cb_embed_host_leave(cb_embed_fail(CARBON_ENOMEM, "carbon_list_tasklets: out of memory"));
    }
    *out = v;
    *count = n;
    return cb_embed_host_leave(CARBON_OK);
}
