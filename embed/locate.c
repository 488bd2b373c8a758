/* Where the `scheduler` and `carbon` Python packages are, and the version.
 *
 * Nothing is baked in as an absolute path: the packages are looked for
 * relative to the file that holds this code (dladdr), which is libcarbon.so
 * for a game linking the shared library, or the game's own executable when
 * it links libcarbon.a. Candidates, first match wins (docs/deployment.md):
 *
 *   <dir>/<rel lib -> python dir>    installed libcarbon.so: <libdir>/carbon/python
 *   <dir>/<rel bin -> python dir>    installed program in <bindir>, static link
 *   <dir>/../python                  the build tree (build/bin, build/lib)
 *
 * A directory counts if it holds scheduler/__init__.py. */
#define _GNU_SOURCE
#include "internal.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef CARBON_REL_LIB_PYTHONDIR
#define CARBON_REL_LIB_PYTHONDIR "carbon/python"
#endif
#ifndef CARBON_REL_BIN_PYTHONDIR
#define CARBON_REL_BIN_PYTHONDIR "../lib/carbon/python"
#endif
#ifndef CARBON_PYTHON_VERSION
#define CARBON_PYTHON_VERSION "3"
#endif

const char *carbon_version(int *number)
{
    if (number)
        *number = CARBON_VERSION_NUMBER;
    return CARBON_VERSION_STRING " (Python " CARBON_PYTHON_VERSION ")";
}

static int holds_packages(const char *dir)
{
    char probe[PATH_MAX];

    if ((size_t)snprintf(probe, sizeof probe, "%s/scheduler/__init__.py", dir) >= sizeof probe)
        return 0;
    return access(probe, R_OK) == 0;
}

int cb_embed_package_dir_find(char *out, size_t size)
{
    static const char *const rel[] = {CARBON_REL_LIB_PYTHONDIR, CARBON_REL_BIN_PYTHONDIR, "../python"};
    Dl_info info;
    char file[PATH_MAX], dir[PATH_MAX], cand[PATH_MAX];

    if (!dladdr((void *)cb_embed_package_dir_find, &info) || !info.dli_fname)
        return -1;
    /* The main program reports argv[0]-like names: use /proc/self/exe. */
    if (!realpath(info.dli_fname, file)) {
        ssize_t n = readlink("/proc/self/exe", file, sizeof file - 1);
        if (n <= 0)
            return -1;
        file[n] = '\0';
    }
    snprintf(dir, sizeof dir, "%s", file);
    dirname(dir);
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        if ((size_t)snprintf(cand, sizeof cand, "%s/%s", dir, rel[i]) >= sizeof cand)
            continue;
        if (holds_packages(cand)) {
            if (!realpath(cand, out) || strlen(out) >= size)
                snprintf(out, size, "%s", cand);
            return 0;
        }
    }
    snprintf(out, size, "%s", dir);
    return -1;
}
