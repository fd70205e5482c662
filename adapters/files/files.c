/*  files.c: the `files` plugin of maillage-adapter: a drop folder.

    plugin
        dir = /srv/maillage/drop      # holds in/ done/ failed/ out/ (made if missing)
        max_file_bytes = 1048576      # larger files go to failed/ (default 1 MiB)

    Out: each complete `*.json` file in in/ is an event (the envelope keys
    of PROTOCOL.md §3 and `body`, as JSON; the README, "Adapters"). A file
    is complete once it has its final name: write it under a name that
    starts with a dot or does not end in `.json` (`.x.json.tmp`, `x.part`)
    and rename it. After the broker's CONFIRM it moves to done/; after a
    refusal it moves to failed/ beside `NAME.error`, which holds the code
    and the reason. A file without an `id` gets one made from its name and
    content (a name-based UUID), so publishing it again after a crash
    is idempotent.

    In: each delivery is written to out/ID.json (the JSON form of
    mlg_deliver_to_json) by writing .ID.json.tmp, fsync, and rename, then
    fsync of the folder; a redelivery overwrites the same file.

    The folders may be writable by others than the adapter, so no name in
    them is trusted: the four folders are opened once, and every file is
    reached from them by its name alone, never through a symbolic link
    (O_NOFOLLOW). Only regular files are read (a link, a folder, a FIFO or
    a device in in/ moves to failed/ unread), and a temporary file is
    always made new (O_EXCL), so a link planted in its place is removed,
    never written through. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>
#include <jansson.h>

#include "maillage/adapter.h"
#include "maillage/json.h"

typedef struct {
    const mlg_adapter_host_t *host;
    char *dir, *in, *done, *failed, *out;
    int in_fd, done_fd, failed_fd, out_fd; /* the folders, opened once */
    size_t max_file_bytes;
    zhashx_t *inflight; /* file name -> itself, while the broker has not answered */
} s_files_t;

static const char *const s_keys[] = {"dir", "max_file_bytes", NULL};

/* s_read's errno for a name in in/ that is not a regular file */
#define S_ENOTREG ENODEV

static int
s_mkdir(const char *path)
{
    return mkdir(path, 0750) == 0 || errno == EEXIST ? 0 : -1;
}

/* Writes `len` bytes to the file `name` of the folder `dir_fd` durably:
   a temporary file made new, fsync, rename, fsync of the folder. */
static int
s_write_atomic(int dir_fd, const char *name, const char *data, size_t len)
{
    char tmp[NAME_MAX + 1];
    if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = openat(dir_fd, tmp, flags, 0640);
    if (fd < 0 && errno == EEXIST) {
        /* left by a crash, or planted: unlinking removes the name (a link,
           not what it points to), and the file is made anew */
        if (unlinkat(dir_fd, tmp, 0) != 0 && errno != ENOENT)
            return -1;
        fd = openat(dir_fd, tmp, flags, 0640);
    }
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            unlinkat(dir_fd, tmp, 0);
            return -1;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlinkat(dir_fd, tmp, 0);
        return -1;
    }
    /* a link in the final name's place is replaced, not followed */
    if (renameat(dir_fd, tmp, dir_fd, name) != 0) {
        unlinkat(dir_fd, tmp, 0);
        return -1;
    }
    return fsync(dir_fd);
}

static void
s_close(void *state)
{
    s_files_t *self = state;
    if (!self)
        return;
    zhashx_destroy(&self->inflight);
    int fds[] = {self->in_fd, self->done_fd, self->failed_fd, self->out_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(self->dir);
    free(self->in);
    free(self->done);
    free(self->failed);
    free(self->out);
    free(self);
}

static mlg_adapter_rc_t
s_open(const mlg_adapter_host_t *host, void **state, char *err, size_t errlen)
{
    const char *dir = host->config_path(host->self, "dir");
    if (!dir) {
        snprintf(err, errlen, "plugin/dir is required: the drop folder");
        return MLG_ADAPTER_FATAL;
    }
    const char *max = host->config(host->self, "max_file_bytes");
    char *end = NULL;
    unsigned long long max_bytes = max ? strtoull(max, &end, 10) : 1048576;
    if (max && (!*max || *end || max_bytes < 16 || max_bytes > 268435456)) {
        snprintf(err, errlen,
                 "plugin/max_file_bytes: '%s' is not a size from 16 to 268435456", max);
        return MLG_ADAPTER_FATAL;
    }
    s_files_t *self = calloc(1, sizeof(*self));
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return MLG_ADAPTER_FATAL;
    }
    self->host = host;
    self->in_fd = self->done_fd = self->failed_fd = self->out_fd = -1;
    self->max_file_bytes = (size_t)max_bytes;
    self->dir = strdup(dir);
    self->in = zsys_sprintf("%s/in", dir);
    self->done = zsys_sprintf("%s/done", dir);
    self->failed = zsys_sprintf("%s/failed", dir);
    self->out = zsys_sprintf("%s/out", dir);
    self->inflight = zhashx_new();
    if (!self->dir || !self->in || !self->done || !self->failed || !self->out
        || !self->inflight) {
        snprintf(err, errlen, "out of memory");
        s_close(self);
        return MLG_ADAPTER_FATAL;
    }
    zhashx_set_destructor(self->inflight, (zhashx_destructor_fn *)zstr_free);
    zhashx_set_duplicator(self->inflight, (zhashx_duplicator_fn *)strdup);
    const char *dirs[] = {self->dir, self->in, self->done, self->failed, self->out};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (s_mkdir(dirs[i]) != 0) {
            snprintf(err, errlen, "cannot make the folder %s: %s", dirs[i],
                     strerror(errno));
            s_close(self);
            return MLG_ADAPTER_FATAL;
        }
    }
    /* the folders themselves are the operator's: they may be links */
    int *fds[] = {&self->in_fd, &self->done_fd, &self->failed_fd, &self->out_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        *fds[i] = open(dirs[i + 1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (*fds[i] < 0) {
            snprintf(err, errlen, "cannot open the folder %s: %s", dirs[i + 1],
                     strerror(errno));
            s_close(self);
            return MLG_ADAPTER_FATAL;
        }
    }
    *state = self;
    return MLG_ADAPTER_OK;
}

static bool
s_complete_name(const char *name)
{
    size_t len = strlen(name);
    return name[0] != '.' && len > 5 && strcmp(name + len - 5, ".json") == 0;
}

static int
s_by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the whole file `name` of the folder `dir_fd` if it is a regular
   file of at most `max` bytes; NULL with errno otherwise: EFBIG when it
   is larger, ELOOP when it is a symbolic link, S_ENOTREG when it is
   something else (a folder, a FIFO, a device). */
static char *
s_read(int dir_fd, const char *name, size_t max, size_t *len)
{
    /* O_NONBLOCK: a FIFO planted in the folder must not hold the loop */
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    int why = 0;
    if (fstat(fd, &st) != 0)
        why = errno;
    else if (!S_ISREG(st.st_mode))
        why = S_ENOTREG;
    else if ((uint64_t)st.st_size > max)
        why = EFBIG;
    if (why) {
        close(fd);
        errno = why;
        return NULL;
    }
    char *buf = malloc(max + 1);
    if (!buf) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    /* up to max + 1 bytes: a file that grew since fstat is still caught */
    size_t n = 0;
    while (n <= max) {
        ssize_t got = read(fd, buf + n, max + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            close(fd);
            errno = EIO;
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Moves in/NAME to failed/NAME beside failed/NAME.error. */
static int
s_fail_file(s_files_t *self, const char *name, const char *code, const char *reason)
{
    char *line = zsys_sprintf("%s: %s\n", code, reason);
    char *ename = zsys_sprintf("%s.error", name);
    int rc =
        line && ename ? s_write_atomic(self->failed_fd, ename, line, strlen(line)) : -1;
    zstr_free(&line);
    zstr_free(&ename);
    if (rc != 0)
        return -1;
    if (renameat(self->in_fd, name, self->failed_fd, name) != 0 && errno != ENOENT)
        return -1;
    fsync(self->in_fd);
    fsync(self->failed_fd);
    self->host->log(self->host->self, "warn", "%s moved to failed/: %s: %s", name, code,
                    reason);
    return 0;
}

/* A name-based UUID (version 5 layout, SHA-1) of the file's name and
   content: the same file dropped again after a crash keeps its id. */
static void
s_name_uuid(const char *name, const char *data, size_t len, char out[37])
{
    zdigest_t *d = zdigest_new();
    zdigest_update(d, (const byte *)"maillage-files:", 15);
    zdigest_update(d, (const byte *)name, strlen(name));
    zdigest_update(d, (const byte *)"\n", 1);
    zdigest_update(d, (const byte *)data, len);
    const byte *h = zdigest_data(d);
    byte u[16];
    memcpy(u, h, 16);
    zdigest_destroy(&d);
    u[6] = (byte)((u[6] & 0x0f) | 0x50);
    u[8] = (byte)((u[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}

/* The event in in/NAME; NULL when it cannot be one (the file has then
   been moved to failed/, or left in place on an I/O trouble). */
static mlg_msg_t *
s_load_event(s_files_t *self, const char *name)
{
    size_t len = 0;
    char *text = s_read(self->in_fd, name, self->max_file_bytes, &len);
    if (!text) {
        if (errno == ELOOP || errno == S_ENOTREG)
            s_fail_file(self, name, "NOT_A_FILE",
                        errno == ELOOP ? "a symbolic link: not followed"
                                       : "not a regular file: not read");
        else if (errno == EFBIG) {
            char why[128];
            snprintf(why, sizeof(why),
                     "the file is larger than plugin/max_file_bytes (%zu)",
                     self->max_file_bytes);
            s_fail_file(self, name, "TOO_LARGE", why);
        }
        else if (errno != ENOENT)
            self->host->log(self->host->self, "warn", "cannot read %s/%s: %s", self->in,
                            name, strerror(errno));
        return NULL;
    }
    /* an id made from the file when it has none */
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root && json_is_object(root) && !json_object_get(root, "id")) {
        char id[37];
        s_name_uuid(name, text, len, id);
        json_object_set_new(root, "id", json_string(id));
        char *with_id = json_dumps(root, JSON_COMPACT);
        if (with_id) {
            free(text);
            text = with_id;
            len = strlen(text);
        }
    }
    json_decref(root);
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_publish_from_json(text, len, &msg, &err);
    free(text);
    if (rc != MLG_OK) {
        const char *code = mlg_rc_wire(rc);
        s_fail_file(self, name, code ? code : "MALFORMED", err.reason);
        return NULL;
    }
    return msg;
}

static mlg_adapter_rc_t
s_poll(void *state, size_t max, mlg_msg_t **events, void **tags, size_t *n)
{
    s_files_t *self = state;
    *n = 0;
    /* in/ as opened at the start; its own descriptor, which closedir closes */
    int fd = dup(self->in_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    if (d)
        rewinddir(d);
    else {
        self->host->log(self->host->self, "warn", "cannot read the folder %s: %s",
                        self->in, strerror(errno));
        return MLG_ADAPTER_RETRY;
    }
    size_t count = 0, cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!s_complete_name(e->d_name) || zhashx_lookup(self->inflight, e->d_name))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = realloc(names, cap * sizeof(*names));
            if (!grown)
                break;
            names = grown;
        }
        names[count] = strdup(e->d_name);
        if (names[count])
            count++;
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof(*names), s_by_name);
    for (size_t i = 0; i < count; i++) {
        if (*n < max) {
            mlg_msg_t *msg = s_load_event(self, names[i]);
            if (msg) {
                zhashx_insert(self->inflight, names[i], names[i]);
                events[*n] = msg;
                tags[*n] = zhashx_lookup(self->inflight, names[i]);
                (*n)++;
            }
        }
        free(names[i]);
    }
    free(names);
    return MLG_ADAPTER_OK;
}

static mlg_adapter_rc_t
s_outcome(void *state, void *tag, const mlg_adapter_outcome_t *out)
{
    s_files_t *self = state;
    const char *name = tag;
    mlg_adapter_rc_t rc = MLG_ADAPTER_OK;
    if (out->confirmed) {
        if (renameat(self->in_fd, name, self->done_fd, name) != 0 && errno != ENOENT) {
            self->host->log(self->host->self, "warn", "cannot move %s to done/: %s", name,
                            strerror(errno));
            rc = MLG_ADAPTER_RETRY;
        }
        else {
            fsync(self->in_fd);
            fsync(self->done_fd);
        }
    }
    else if (s_fail_file(self, name, out->code ? out->code : "INVALID",
                         out->reason ? out->reason : "")
             != 0) {
        self->host->log(self->host->self, "warn", "cannot move %s to failed/: %s", name,
                        strerror(errno));
        rc = MLG_ADAPTER_RETRY;
    }
    zhashx_delete(self->inflight, name); /* frees the tag */
    return rc;
}

static mlg_adapter_rc_t
s_deliver(void *state, const mlg_msg_t *msg, char *err, size_t errlen)
{
    s_files_t *self = state;
    char *json = NULL;
    mlg_rc_t rc = mlg_deliver_to_json(msg, &json, err, errlen);
    if (rc == MLG_ERR_JSON)
        return MLG_ADAPTER_REFUSE; /* cannot be written as JSON, ever */
    if (rc != MLG_OK)
        return MLG_ADAPTER_RETRY;
    char name[64];
    snprintf(name, sizeof(name), "%s.json", msg->id); /* a checked UUID: a safe name */
    size_t len = strlen(json);
    int w = s_write_atomic(self->out_fd, name, json, len);
    free(json);
    if (w != 0) {
        snprintf(err, errlen, "cannot write %s/%s: %s", self->out, name, strerror(errno));
        return MLG_ADAPTER_RETRY;
    }
    return MLG_ADAPTER_OK;
}

MLG_ADAPTER_EXPORT const mlg_adapter_plugin_t maillage_adapter_plugin = {
    .abi = MLG_ADAPTER_ABI,
    .msg_layout = MLG_MSG_LAYOUT,
    .name = "files",
    .description = "a drop folder: in/ to publish, out/ for deliveries",
    .config_keys = s_keys,
    .open = s_open,
    .poll = s_poll,
    .outcome = s_outcome,
    .deliver = s_deliver,
    .close = s_close,
};
