/*  registry.c: loads the project's schemas/ for the tests. */

#include <stdio.h>
#include <stdlib.h>

#include "registry.h"

mlg_registry_t *
test_load_registry(void)
{
    const char *src = getenv("MLG_SOURCE_DIR");
    char dir[4096], err[512];
    snprintf(dir, sizeof(dir), "%s/schemas", src ? src : ".");
    mlg_registry_t *reg = mlg_registry_load(dir, err, sizeof(err));
    if (!reg)
        fprintf(stderr, "%s\n", err);
    return reg;
}
