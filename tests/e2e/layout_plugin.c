/*  layout_plugin.c: a plugin of this ABI built against another layout
    of mlg_msg_t (other limits), which the adapter host must refuse by
    name rather than call. */

#include "maillage/adapter.h"

MLG_ADAPTER_EXPORT const mlg_adapter_plugin_t maillage_adapter_plugin = {
    .abi = MLG_ADAPTER_ABI,
    .msg_layout = MLG_MSG_LAYOUT + 1,
    .name = "layout",
};
