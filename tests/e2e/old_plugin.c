/*  old_plugin.c: a plugin built for another plugin ABI, which the adapter
    host must refuse by name rather than call. */

#include "maillage/adapter.h"

MLG_ADAPTER_EXPORT const mlg_adapter_plugin_t maillage_adapter_plugin = {
    .abi = 999,
    .name = "old",
};
