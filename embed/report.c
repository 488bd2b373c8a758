/* Where exceptions escaping game code go (the error callback), and runtime
 * messages (the log callback). Nothing here lets an exception escape. */
#include "internal.h"

#include "preempt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* NULL in, NULL out (a failed PyUnicode_AsUTF8). */
static char *pymem_strdup(const char *s)
{
    size_t n;
    char *d;

    if (!s)
        return NULL;
    n = strlen(s) + 1;
    d = PyMem_Malloc(n);

    if (d)
        memcpy(d, s, n);
    return d;
}

/* "".join(traceback.format_exception(exc)), or str(exc) if that fails. */
static char *format_exc_object(PyObject *exc)
{
    PyObject *tbmod, *lines = NULL, *sep = NULL, *text = NULL;
    char *out = NULL;

    tbmod = PyImport_ImportModule("traceback");
    if (tbmod)
        lines = PyObject_CallMethod(tbmod, "format_exception", "O", exc);
    if (lines)
        sep = PyUnicode_FromString("");
    if (sep)
        text = PyUnicode_Join(sep, lines);
    if (!text) {
        PyErr_Clear();
        PyObject *s = PyObject_Str(exc);
        if (s)
            text = PyUnicode_FromFormat("%s: %U\n", Py_TYPE(exc)->tp_name, s);
        Py_XDECREF(s);
    }
    if (text) {
        const char *u = PyUnicode_AsUTF8(text);
        if (u)
            out = pymem_strdup(u);
    }
    PyErr_Clear();
    if (!out)
        out = pymem_strdup(Py_TYPE(exc)->tp_name);
    Py_XDECREF(text);
    Py_XDECREF(sep);
    Py_XDECREF(lines);
    Py_XDECREF(tbmod);
    return out;
}

char *cb_embed_format_exception(void)
{
    PyObject *exc = cb_err_fetch();
    char *out;

    if (!exc)
        return pymem_strdup("unknown error (no Python exception was set)");
    out = format_exc_object(exc);
    Py_DECREF(exc);
    return out;
}

/* Default error callback: to sys.stderr (so Python-level redirection sees
 * it), else to the C stderr. */
static void default_error(const char *name, const char *tb)
{
    PyObject *err = PySys_GetObject("stderr"); /* borrowed */
    PyObject *exc = cb_err_fetch();            /* keep whatever was pending */

    if (err && err != Py_None) {
        PyObject *text = PyUnicode_FromFormat("carbon: uncaught exception in tasklet %s:\n%s", name, tb);
        if (text && PyFile_WriteObject(text, err, Py_PRINT_RAW) == 0) {
            PyObject *r = PyObject_CallMethod(err, "flush", NULL);
            Py_XDECREF(r);
            Py_DECREF(text);
            PyErr_Clear();
            cb_err_restore(exc);
            return;
        }
        Py_XDECREF(text);
        PyErr_Clear();
    }
    fprintf(stderr, "carbon: uncaught exception in tasklet %s:\n%s", name, tb);
    fflush(stderr);
    cb_err_restore(exc);
}

/* The tasklet's label (tasklet.name: set by the game, else module.qualname
 * of its callable), else `what`. */
static char *tasklet_name(cb_tasklet *t, const char *what)
{
    char label[256];

    if (t && (t->name || t->qualname || t->method_name)) {
        cb_tasklet_label(t, label, sizeof label);
        return pymem_strdup(label);
    }
    return pymem_strdup(what ? what : "?");
}

int cb_embed_report(cb_tasklet *t, const char *what)
{
    const carbon_config *cfg = cb_embed_config();
    PyObject *exc = cb_err_fetch();
    char *name, *tb;

    if (!exc)
        return 0;
    if (cb_TaskletExit && PyErr_GivenExceptionMatches(exc, cb_TaskletExit)) {
        Py_DECREF(exc);
        return 0;
    }
    tb = format_exc_object(exc);
    Py_DECREF(exc);
    name = tasklet_name(t, what);
    if (cfg->error)
        cfg->error(cfg->userdata, name ? name : "?", tb ? tb : "?");
    else
        default_error(name ? name : "?", tb ? tb : "?");
    PyErr_Clear(); /* a callback must not leave one behind */
    PyMem_Free(name);
    PyMem_Free(tb);
    return 1;
}

void cb_embed_log(int level, const char *fmt, ...)
{
    const carbon_config *cfg = cb_embed_config();
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (cfg->log) {
        cfg->log(cfg->userdata, level, buf);
    } else if (level >= CARBON_LOG_WARNING) {
        fprintf(stderr, "carbon: %s\n", buf);
        fflush(stderr);
    }
}
