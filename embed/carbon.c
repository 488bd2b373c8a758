/* The host-facing lifetime: carbon_init / carbon_shutdown, running code in the
 * host thread's main tasklet, status codes and carbon_last_error.
 *
 * GIL discipline: the host thread holds the GIL only inside a carbon call;
 * between calls its thread state is parked in `host_ts` (PyEval_SaveThread),
 * so worker threads run while the host does its own work. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PHASE_NONE, PHASE_RUNNING, PHASE_SHUTTING_DOWN, PHASE_FINALIZED };

static struct {
    int phase;
    carbon_config cfg;          /* strings below are our copies */
    char *program_name, *package_dir;
    char **module_paths;
    uv_thread_t host_thread;
    PyThreadState *host_ts;     /* parked between calls */
    int in_call;                /* a carbon call is running on the host thread */
    int stopping;               /* carbon_shutdown started (maybe timed out): no new workers */
    const char *host_call;      /* run_file/run_string/call in progress: its name */
} g;

/* Used without carbon_init (the `carbon` module in another host). */
static carbon_config default_cfg;
static int default_cfg_ready;
static int hostless_exiting;

/* ---- errors ------------------------------------------------------------------------ */

#define LAST_ERROR_SIZE 4096
static _Thread_local char last_error[LAST_ERROR_SIZE];

const char *carbon_strerror(int code)
{
    switch (code) {
    case CARBON_OK: return "success";
    case CARBON_EINVAL: return "invalid argument";
    case CARBON_ESTATE: return "wrong runtime state";
    case CARBON_ETHREAD: return "called from a thread other than the host thread";
    case CARBON_EBUSY: return "re-entrant carbon call";
    case CARBON_EPYTHON: return "Python exception";
    case CARBON_ENOMEM: return "out of memory";
    case CARBON_EUV: return "libuv error";
    case CARBON_EREINIT: return "the runtime cannot be initialised twice in a process";
    case CARBON_ETIMEDOUT: return "timed out";
    case CARBON_EFULL: return "too many values waiting";
    default: return "unknown error";
    }
}

const char *carbon_last_error(void)
{
    return last_error;
}

/* Keeps the end of a long text: the exception line of a traceback is last. */
static void set_last_error(const char *text)
{
    size_t n = strlen(text);

    if (n < LAST_ERROR_SIZE) {
        memcpy(last_error, text, n + 1);
    } else {
        static const char cut[] = "...\n";
        size_t keep = LAST_ERROR_SIZE - sizeof cut;
        memcpy(last_error, cut, sizeof cut - 1);
        memcpy(last_error + sizeof cut - 1, text + n - keep, keep + 1);
    }
}

int cb_embed_fail(int code, const char *fmt, ...)
{
    char buf[LAST_ERROR_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    set_last_error(buf);
    return code;
}

int cb_embed_fail_python(void)
{
    char *text = cb_embed_format_exception();

    set_last_error(text ? text : "Python exception (out of memory formatting it)");
    PyMem_Free(text);
    return CARBON_EPYTHON;
}

static void clear_error(void)
{
    last_error[0] = '\0';
}

/* ---- configuration -------------------------------------------------------------------- */

int carbon_config_init(carbon_config *cfg)
{
    if (!cfg)
        return cb_embed_fail(CARBON_EINVAL, "carbon_config_init: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->nested = 1;
    cfg->worker_budget_ns = 10 * 1000 * 1000;
    cfg->frame_period_ns = 1000000000 / 60;
    cfg->switch_interval_ns = CB_EMBED_DEFAULT_SWITCH_INTERVAL_NS;
    cfg->shutdown_grace_ns = CB_EMBED_DEFAULT_GRACE_NS;
    cfg->shutdown_timeout_ns = CB_EMBED_DEFAULT_SHUTDOWN_TIMEOUT_NS;
    cfg->slice_ns = CB_EMBED_DEFAULT_SLICE_NS;
    return CARBON_OK;
}

void carbon_free(void *p)
{
    free(p);
}

const carbon_config *cb_embed_config(void)
{
    if (g.phase == PHASE_RUNNING || g.phase == PHASE_SHUTTING_DOWN)
        return &g.cfg;
    if (!default_cfg_ready) {
        carbon_config_init(&default_cfg);
        default_cfg_ready = 1;
    }
    return &default_cfg;
}

int cb_embed_accepting_workers(void)
{
    if (g.phase == PHASE_NONE)
        return !hostless_exiting;
    return g.phase == PHASE_RUNNING && !g.stopping;
}

void cb_embed_stop_accepting_workers(void)
{
    if (g.phase == PHASE_NONE)
        hostless_exiting = 1;
}

static char *dup_str(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_config_copy(void)
{
    free(g.program_name);
    free(g.package_dir);
    if (g.module_paths) {
        for (char **p = g.module_paths; *p; p++)
            free(*p);
        free(g.module_paths);
    }
    g.program_name = g.package_dir = NULL;
    g.module_paths = NULL;
}

static int copy_config(const carbon_config *cfg)
{
    size_t n = 0;

    g.cfg = *cfg;
    g.program_name = dup_str(cfg->program_name ? cfg->program_name : "carbon");
    if (cfg->package_dir) {
        g.package_dir = dup_str(cfg->package_dir);
    } else {
        char found[PATH_MAX];
        if (cb_embed_package_dir_find(found, sizeof found) < 0) {
            free_config_copy();
            return cb_embed_fail(CARBON_EINVAL,
                                 "carbon_init: the `scheduler` and `carbon` Python packages were not found "
                                 "next to the library (searched from %s: carbon/python, "
                                 "../lib/<arch>/carbon/python, ../python); set carbon_config.package_dir "
                                 "(docs/deployment.md)", found);
        }
        g.package_dir = dup_str(found);
    }
    if (cfg->module_paths)
        while (cfg->module_paths[n])
            n++;
    g.module_paths = calloc(n + 1, sizeof *g.module_paths);
    if (!g.program_name || !g.package_dir || !g.module_paths)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        if (!(g.module_paths[i] = strdup(cfg->module_paths[i])))
            goto nomem;
    g.cfg.program_name = g.program_name;
    g.cfg.package_dir = g.package_dir;
    g.cfg.module_paths = (const char *const *)g.module_paths;
    if (g.cfg.worker_budget_ns <= 0)
        g.cfg.worker_budget_ns = 10 * 1000 * 1000;
    if (g.cfg.frame_period_ns <= 0)
        g.cfg.frame_period_ns = 1000000000 / 60;
    if (g.cfg.switch_interval_ns <= 0)
        g.cfg.switch_interval_ns = CB_EMBED_DEFAULT_SWITCH_INTERVAL_NS;
    if (!g.cfg.log)
        g.cfg.print_to_log = 0; /* the default log drops INFO lines */
    if (g.cfg.slice_ns == 0)
        g.cfg.slice_ns = CB_EMBED_DEFAULT_SLICE_NS;
    return CARBON_OK;
nomem:
    free_config_copy();
    return cb_embed_fail(CARBON_ENOMEM, "carbon_init: out of memory copying the configuration");
}

/* ---- entering and leaving the host thread's calls --------------------------------------- */

static int check_host_thread(const char *fn)
{
    uv_thread_t self = uv_thread_self();

    if (g.phase != PHASE_RUNNING)
        return cb_embed_fail(CARBON_ESTATE, "%s: the runtime is not initialised", fn);
    if (!uv_thread_equal(&self, &g.host_thread))
        return cb_embed_fail(CARBON_ETHREAD, "%s: must be called from the thread that called carbon_init", fn);
    if (g.in_call)
        return cb_embed_fail(CARBON_EBUSY, "%s: called from inside another carbon call", fn);
    return CARBON_OK;
}

/* Takes the GIL for a host call. */
static int enter(const char *fn)
{
    int rc = check_host_thread(fn);

    if (rc != CARBON_OK)
        return rc;
    clear_error();
    g.in_call = 1;
    PyEval_RestoreThread(g.host_ts);
    return CARBON_OK;
}

static int leave(int rc)
{
    g.host_ts = PyEval_SaveThread();
    g.in_call = 0;
    return rc;
}

/* ---- init -------------------------------------------------------------------------------- */

static int sys_path_insert(Py_ssize_t index, const char *dir)
{
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *s;
    int rc;

    if (!path || !PyList_Check(path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return -1;
    }
    s = PyUnicode_DecodeFSDefault(dir);
    if (!s)
        return -1;
    rc = PyList_Insert(path, index, s);
    Py_DECREF(s);
    return rc;
}

/* Imports `carbon` (and with it `scheduler`): the core's types and
 * TaskletExit exist from here on. A failure names the directory. */
static int import_packages(void)
{
    PyObject *mod = PyImport_ImportModule("carbon");
    PyObject *type, *value, *tb;

    if (mod) {
        Py_DECREF(mod);
        return 0;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyErr_Format(PyExc_ImportError,
                 "carbon_init: cannot import the `scheduler` and `carbon` packages from package_dir %s "
                 "(set carbon_config.package_dir to the directory holding scheduler/ and carbon/; "
                 "installed: <prefix>/lib/<arch>/carbon/python; see docs/deployment.md): %S",
                 g.package_dir, value ? value : Py_None);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return -1;
}

static int configure_python(void)
{
    Py_ssize_t i = 0;
    size_t rounded;

    for (char **p = g.module_paths; *p; p++)
        if (sys_path_insert(i++, *p) < 0)
            return -1;
    if (g.package_dir && sys_path_insert(i, g.package_dir) < 0)
        return -1;
    if (import_packages() < 0)
        return -1;
    cb_g.use_nested = g.cfg.nested ? 1 : 0;
    if (g.cfg.stack_size) {
        rounded = cb_stack_tasklet_size(g.cfg.stack_size);
        cb_g.stack_size = rounded;
    }
    /* Imported by import_packages(): the switch interval, print to the log. */
    PyObject *mod = PyImport_ImportModule("carbon");
    if (!mod)
        return -1;
    PyObject *r = PyObject_CallMethod(mod, "_configure_host", "di", (double)g.cfg.switch_interval_ns / 1e9,
                                      g.cfg.print_to_log);
    Py_DECREF(mod);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

int carbon_init(const carbon_config *cfg)
{
    PyConfig pc;
    PyStatus st;
    int rc;

    clear_error();
    if (!cfg)
        return cb_embed_fail(CARBON_EINVAL, "carbon_init: cfg is NULL");
    if (g.phase == PHASE_RUNNING || g.phase == PHASE_SHUTTING_DOWN)
        return cb_embed_fail(CARBON_ESTATE, "carbon_init: the runtime is already initialised");
    if (g.phase == PHASE_FINALIZED)
        return cb_embed_fail(CARBON_EREINIT,
                             "carbon_init: the runtime was shut down; CPython extension types cannot "
                             "be re-initialised in the same process");
    if (Py_IsInitialized())
        return cb_embed_fail(CARBON_ESTATE,
                             "carbon_init: a Python interpreter is already running in this process");
    if (cfg->stack_size && !cb_stack_tasklet_size(cfg->stack_size))
        return cb_embed_fail(CARBON_EINVAL,
                             "carbon_init: stack_size must be 0 or between %zu (a thread's stack) "
                             "and %u bytes",
                             cb_stack_thread_size(), CB_STACK_MAX_SIZE);
    if ((rc = copy_config(cfg)) != CARBON_OK)
        return rc;

    /* Built-in modules must be registered before the interpreter starts. */
    if (PyImport_AppendInittab("_scheduler", PyInit__scheduler) < 0 ||
        PyImport_AppendInittab("_carbon", PyInit__carbon) < 0 ||
        PyImport_AppendInittab("_carbon_net", PyInit__carbon_net) < 0) {
        free_config_copy();
        return cb_embed_fail(CARBON_ENOMEM, "carbon_init: cannot register the built-in modules");
    }

    if (cfg->isolated)
        PyConfig_InitIsolatedConfig(&pc);
    else
        PyConfig_InitPythonConfig(&pc);
    pc.install_signal_handlers = 0; /* the host owns its signals */
    pc.parse_argv = 0;
    st = PyConfig_SetBytesString(&pc, &pc.program_name, g.program_name);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&pc);
    PyConfig_Clear(&pc);
    if (PyStatus_Exception(st)) {
        free_config_copy();
        /* Never Py_ExitStatusException: that would exit the host. */
        return cb_embed_fail(CARBON_EPYTHON, "carbon_init: cannot start Python: %s%s%s",
                             st.func ? st.func : "", st.func ? ": " : "",
                             st.err_msg ? st.err_msg : "unknown error");
    }
    g.host_thread = uv_thread_self();
    g.phase = PHASE_RUNNING;
    if (configure_python() < 0 || !cb_embed_loop_get()) {
        rc = cb_embed_fail_python();
        cb_embed_loop_close();
        Py_FinalizeEx();
        free_config_copy();
        g.phase = PHASE_FINALIZED;
        return rc;
    }
    cb_embed_post_open(1);
    g.host_ts = PyEval_SaveThread();
    return CARBON_OK;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

int carbon_shutdown(void)
{
    int rc = check_host_thread("carbon_shutdown");
    long long timeout = g.cfg.shutdown_timeout_ns;

    if (rc != CARBON_OK)
        return rc;
    clear_error();
    g.in_call = 1;
    PyEval_RestoreThread(g.host_ts);
    g.stopping = 1; /* no new workers, even if we time out below */
    if (timeout == 0)
        timeout = CB_EMBED_DEFAULT_SHUTDOWN_TIMEOUT_NS;
    if (cb_embed_workers_shutdown(timeout < 0 ? -1 : timeout) < 0)
        return leave(cb_embed_fail(CARBON_ETIMEDOUT,
                                   "carbon_shutdown: a worker is still running %lld ms after it was asked "
                                   "to stop (see the log); the runtime keeps running: tick on and call "
                                   "carbon_shutdown again",
                                   timeout / 1000000));
    g.phase = PHASE_SHUTTING_DOWN;
    cb_embed_post_clear();
    cb_embed_loop_close();
    if (Py_FinalizeEx() < 0)
        rc = cb_embed_fail(CARBON_EPYTHON, "carbon_shutdown: errors while finalizing the interpreter "
                                           "(buffered data could not be flushed)");
    cb_embed_workers_free_all();
    free_config_copy();
    g.host_ts = NULL;
    g.phase = PHASE_FINALIZED;
    g.in_call = 0;
    return rc;
}

/* ---- running code ----------------------------------------------------------------------------- */

static int run_code(PyObject *code)
{
    PyObject *main_mod, *globals, *r;

    main_mod = PyImport_AddModule("__main__"); /* borrowed */
    if (!main_mod)
        return -1;
    globals = PyModule_GetDict(main_mod); /* borrowed */
    if (PyDict_GetItemString(globals, "__builtins__") == NULL &&
        PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        return -1;
    r = PyEval_EvalCode(code, globals, globals);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Game code may leave the main tasklet with an exception raised in it from
 * elsewhere; a call reports it rather than carrying it into the next one. */
static int finish_python(int r)
{
    return r < 0 ? cb_embed_fail_python() : CARBON_OK;
}

/* ---- host calls: the main tasklet never blocks -----------------------------------------------
 * While a script runs in the host thread's main tasklet (run_file, run_string,
 * call), that tasklet has block_trap set: a channel operation, sleep, frame
 * wait or join that would block it raises RuntimeError instead of making the
 * host wait (for ever, if a worker is running and never answers). */

static int saved_block_trap;

static cb_tasklet *host_main(void)
{
    cb_embed_loop *loop = cb_embed_loop_peek();

    return loop && loop->mgr ? loop->mgr->main : NULL;
}

static void host_call_begin(const char *fn)
{
    cb_tasklet *main = host_main();

    g.host_call = fn;
    if (main && !g.cfg.allow_blocking_host_calls) {
        saved_block_trap = main->block_trap;
        main->block_trap = 1;
    }
}

static int host_call_end(int rc)
{
    cb_tasklet *main = host_main();

    if (main && !g.cfg.allow_blocking_host_calls)
        main->block_trap = saved_block_trap ? 1 : 0;
    if (rc == CARBON_EPYTHON && strstr(carbon_last_error(), "block_trap") &&
        !strstr(carbon_last_error(), "a host call never waits") && g.host_call) {
        static char buf[2 * LAST_ERROR_SIZE]; /* host thread only; set_last_error keeps the end */
        snprintf(buf, sizeof buf,
                 "%s\n%s: the script blocked in the host's main tasklet, which never waits (the host "
                 "would hang): at a script's top level, do not wait on channels, carbon.sleep, "
                 "carbon.wait_frames or Worker.join; start a tasklet for such code (it runs at the "
                 "next carbon_tick)",
                 carbon_last_error(), g.host_call);
        set_last_error(buf);
    }
    g.host_call = NULL;
    return leave(rc);
}

const char *cb_embed_host_call(void)
{
    return g.host_call;
}

int cb_embed_is_host_thread(void)
{
    uv_thread_t self = uv_thread_self();

    return (g.phase == PHASE_RUNNING || g.phase == PHASE_SHUTTING_DOWN) && uv_thread_equal(&self, &g.host_thread);
}

PyObject *cb_embed_refuse_block(const char *what)
{
    cb_manager *m = cb_manager_peek();

    if (g.host_call && m && m->current == m->main && cb_embed_is_host_thread())
        PyErr_Format(PyExc_RuntimeError,
                     "cannot %s in the host's main tasklet during %s (block_trap is set: a host call "
                     "never waits); run this in a tasklet", what, g.host_call);
    else
        PyErr_Format(PyExc_RuntimeError, "cannot %s: the current tasklet has block_trap set", what);
    return NULL;
}

int carbon_run_string(const char *source)
{
    PyObject *code;
    int rc;

    if (!source)
        return cb_embed_fail(CARBON_EINVAL, "carbon_run_string: source is NULL");
    if ((rc = enter("carbon_run_string")) != CARBON_OK)
        return rc;
    host_call_begin("carbon_run_string");
    code = Py_CompileString(source, "<carbon_run_string>", Py_file_input);
    rc = finish_python(code ? run_code(code) : -1);
    Py_XDECREF(code);
    return host_call_end(rc);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    if (!f)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb;
            cap = cap ? cap * 2 : 16384;
            nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        errno = e ? e : EIO;
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int carbon_run_file(const char *path)
{
    PyObject *code = NULL, *main_mod, *file;
    char *src;
    size_t len;
    int rc;

    if (!path)
        return cb_embed_fail(CARBON_EINVAL, "carbon_run_file: path is NULL");
    if ((rc = check_host_thread("carbon_run_file")) != CARBON_OK)
        return rc;
    src = read_file(path, &len);
    if (!src)
        return cb_embed_fail(CARBON_EINVAL, "carbon_run_file: cannot read %s: %s", path, strerror(errno));
    if (strlen(src) != len) {
        free(src);
        return cb_embed_fail(CARBON_EINVAL, "carbon_run_file: %s contains a NUL byte", path);
    }
    if ((rc = enter("carbon_run_file")) != CARBON_OK) {
        free(src);
        return rc;
    }
    host_call_begin("carbon_run_file");
    main_mod = PyImport_AddModule("__main__"); /* borrowed */
    file = PyUnicode_DecodeFSDefault(path);
    if (main_mod && file && PyModule_AddObjectRef(main_mod, "__file__", file) == 0)
        code = Py_CompileStringObject(src, file, Py_file_input, NULL, -1);
    rc = finish_python(code ? run_code(code) : -1);
    Py_XDECREF(code);
    Py_XDECREF(file);
    free(src);
    return host_call_end(rc);
}

/* module.function(*args) in the main tasklet; `args` is a tuple (borrowed).
 * New reference or NULL + exception. */
static PyObject *call_in_main(const char *module, const char *function, PyObject *args)
{
    PyObject *mod, *fn = NULL, *r = NULL;

    mod = PyImport_ImportModule(module);
    if (mod)
        fn = PyObject_GetAttrString(mod, function);
    if (fn)
        r = PyObject_Call(fn, args, NULL);
    Py_XDECREF(fn);
    Py_XDECREF(mod);
    return r;
}

static int check_call_args(const char *fn, const char *module, const char *function)
{
    if (!module || !function || !*module || !*function)
        return cb_embed_fail(CARBON_EINVAL, "%s: module and function must be non-empty strings", fn);
    return CARBON_OK;
}

int carbon_call(const char *module, const char *function)
{
    PyObject *args, *r = NULL;
    int rc;

    if ((rc = check_call_args("carbon_call", module, function)) != CARBON_OK)
        return rc;
    if ((rc = enter("carbon_call")) != CARBON_OK)
        return rc;
    host_call_begin("carbon_call");
    args = PyTuple_New(0);
    if (args)
        r = call_in_main(module, function, args);
    rc = finish_python(r ? 0 : -1);
    Py_XDECREF(r);
    Py_XDECREF(args);
    return host_call_end(rc);
}

/* str(value) as a malloc'd string; NULL for None (*out) or -1 + exception. */
static int result_text(PyObject *value, char **out)
{
    PyObject *s;
    const char *u;

    *out = NULL;
    if (value == Py_None)
        return 0;
    s = PyObject_Str(value);
    u = s ? PyUnicode_AsUTF8(s) : NULL;
    if (u && !(*out = strdup(u)))
        PyErr_NoMemory();
    Py_XDECREF(s);
    return *out ? 0 : -1;
}

int carbon_call_fmt(const char *module, const char *function, char **result, const char *format, ...)
{
    PyObject *built = NULL, *args = NULL, *r = NULL;
    va_list ap;
    int rc;

    if (result)
        *result = NULL;
    if ((rc = check_call_args("carbon_call_fmt", module, function)) != CARBON_OK)
        return rc;
    if ((rc = enter("carbon_call_fmt")) != CARBON_OK)
        return rc;
    host_call_begin("carbon_call_fmt");
    if (format && *format) {
        va_start(ap, format);
        built = Py_VaBuildValue(format, ap);
        va_end(ap);
        if (built && PyTuple_Check(built))
            args = Py_NewRef(built);
        else if (built)
            args = PyTuple_Pack(1, built);
    } else {
        args = PyTuple_New(0);
    }
    if (args)
        r = call_in_main(module, function, args);
    if (r && result && result_text(r, result) < 0)
        Py_CLEAR(r);
    rc = finish_python(r ? 0 : -1);
    Py_XDECREF(r);
    Py_XDECREF(args);
    Py_XDECREF(built);
    return host_call_end(rc);
}

int carbon_call_object(const char *module, const char *function, PyObject *args, PyObject **result)
{
    PyObject *r = NULL;
    int rc;

    if (result)
        *result = NULL;
    if ((rc = check_call_args("carbon_call_object", module, function)) != CARBON_OK)
        return rc;
    /* Before enter(): checking the type needs no GIL (the object is alive,
     * the host owns it). */
    if (args && !PyTuple_Check(args))
        return cb_embed_fail(CARBON_EINVAL, "carbon_call_object: args must be a tuple or NULL");
    if ((rc = enter("carbon_call_object")) != CARBON_OK)
        return rc;
    host_call_begin("carbon_call_object");
    if (args)
        r = call_in_main(module, function, args);
    else if ((args = PyTuple_New(0))) {
        r = call_in_main(module, function, args);
        Py_CLEAR(args);
    }
    rc = finish_python(r ? 0 : -1);
    if (r && result)
        *result = r;
    else
        Py_XDECREF(r);
    return host_call_end(rc);
}

/* ---- the tick's entry (tick.c does the work) ----------------------------------------------------- */

int cb_embed_host_enter(const char *fn)
{
    return enter(fn);
}

int cb_embed_host_leave(int rc)
{
    return leave(rc);
}

int cb_embed_host_checked(const char *fn)
{
    return check_host_thread(fn);
}
