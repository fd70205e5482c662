/*  maillage_keygen.c: `maillage-keygen NAME [DIR]`, a CURVE certificate
    pair in czmq's zcert format for an agency or the broker:

        DIR/NAME          the public certificate (give it to the broker)
        DIR/NAME_secret   the secret certificate (keep it with the client)

    and the configuration line to add for an agency. Exit 0, or 2 on a
    usage error or when a file exists already (it never overwrites a key).
    (The operator CLI will carry this as `maillage keygen`.) */

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc == 2 ? stdout : stderr, "usage: maillage-keygen NAME [DIR]\n");
        return argc == 2 ? 0 : 2;
    }
    const char *dir = argc == 3 ? argv[2] : ".";
    /* the paths as given, however long: a cut one would name another file */
    char *path = zsys_sprintf("%s/%s", dir, argv[1]);
    char *secret = path ? zsys_sprintf("%s_secret", path) : NULL;
    if (!path || !secret) {
        fprintf(stderr, "maillage-keygen: out of memory\n");
        return 2;
    }
    if (access(path, F_OK) == 0 || access(secret, F_OK) == 0) {
        fprintf(stderr, "maillage-keygen: %s exists already: not overwritten\n", path);
        zstr_free(&secret);
        zstr_free(&path);
        return 2;
    }
    zcert_t *cert = zcert_new();
    if (cert)
        zcert_set_meta(cert, "name", "%s", argv[1]);
    int rc = 0;
    if (!cert || zcert_save(cert, path) != 0) {
        fprintf(stderr, "maillage-keygen: could not write %s\n", path);
        rc = 2;
    }
    else {
        printf("wrote %s and %s\n", path, secret);
        printf("for the agencies section of maillage.cfg:\n");
        printf("    %s\n        public_key = \"%s\"\n", argv[1], zcert_public_txt(cert));
        printf("(for the broker itself: security/secret_cert = %s)\n", secret);
    }
    zcert_destroy(&cert);
    zstr_free(&secret);
    zstr_free(&path);
    return rc;
}
