/*  registry.h: the project's own schemas/ for tests. */

#ifndef MLG_TEST_REGISTRY_H
#define MLG_TEST_REGISTRY_H

#include "maillage/schema.h"

/* Loads $MLG_SOURCE_DIR/schemas (ctest sets it); prints the load error
   and returns NULL on failure. */
mlg_registry_t *test_load_registry(void);

#endif
