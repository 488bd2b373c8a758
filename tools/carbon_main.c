/* carbon: a python-like command line host with the scheduler built in.
 *
 *   carbon script.py [args]    carbon -m module [args]    carbon -c code
 *
 * Everything python3 accepts works, with `_scheduler` and `_carbon` as
 * built-in modules and the `scheduler` and `carbon` packages importable. The main tasklet
 * gets a libuv loop on its first carbon call, so carbon.sleep() and friends
 * work at a script's top level. */
#define _GNU_SOURCE
#include <Python.h>

#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PyMODINIT_FUNC PyInit__scheduler(void);
#ifdef CARBON_HAVE_EMBED
PyMODINIT_FUNC PyInit__carbon(void);     /* embed/module.c */
PyMODINIT_FUNC PyInit__carbon_net(void); /* embed/net.c */
#endif

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

#ifndef CARBON_REL_PYTHONDIR
#define CARBON_REL_PYTHONDIR "../lib/carbon/python"
#endif

/* The packages are found beside the program, never at a path baked in at
 * build time: <bindir>/../python in the build tree, <bindir>/CARBON_REL_PYTHONDIR
 * (../lib/<arch>/carbon/python) once installed. */
static void add_package_path(void)
{
    static const char *const rel[] = {"../python", CARBON_REL_PYTHONDIR};
    char exe[PATH_MAX], dir[PATH_MAX + 64], path[2 * PATH_MAX];
    const char *pkg = NULL;
    const char *old = getenv("PYTHONPATH");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    if (n <= 0)
        return;
    exe[n] = '\0';
    dirname(exe);
    for (size_t i = 0; i < sizeof rel / sizeof rel[0] && !pkg; i++) {
        snprintf(dir, sizeof dir, "%s/%s", exe, rel[i]);
        if (is_dir(dir))
            pkg = dir;
    }
    if (!pkg)
        return;
    if (old && *old)
        snprintf(path, sizeof path, "%s:%s", pkg, old);
    else
        snprintf(path, sizeof path, "%s", pkg);
    setenv("PYTHONPATH", path, 1);
}

int main(int argc, char **argv)
{
    if (PyImport_AppendInittab("_scheduler", PyInit__scheduler) < 0)
        return 1;
#ifdef CARBON_HAVE_EMBED
    if (PyImport_AppendInittab("_carbon", PyInit__carbon) < 0 ||
        PyImport_AppendInittab("_carbon_net", PyInit__carbon_net) < 0)
        return 1;
#endif
    add_package_path();
    return Py_BytesMain(argc, argv);
}
