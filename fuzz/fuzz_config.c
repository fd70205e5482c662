/*  fuzz_config.c: libFuzzer target for the broker's configuration loader
    (ZPL through czmq's zconfig, then every key checked). Whatever the
    text, it either loads or fails with a sentence naming the file. */

#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char err[1024];
    brk_config_t *cfg = brk_config_parse(text, "/fuzz/maillage.cfg", err, sizeof(err));
    if (!cfg && strncmp(err, "/fuzz/maillage.cfg", 18) != 0)
        abort(); /* a refusal always names the file */
    if (cfg) {
        /* what loaded is whole */
        if (!cfg->endpoint || !cfg->database || !cfg->schemas || cfg->nagencies == 0)
            abort();
        for (size_t i = 0; i < cfg->nagencies; i++)
            if (!brk_config_agency(cfg, cfg->agencies[i].id))
                abort();
    }
    brk_config_destroy(&cfg);
    free(text);
    return 0;
}
