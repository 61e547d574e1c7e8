/*
 * ctl_keygen: writes a CURVE key pair for the control plane: one for the
 * supervisor (DEALIMPORT_CONTROL_CURVE_SECRET_FILE) and one per operator or
 * script, whose public key goes into the supervisor's clients directory.
 */
#include "ctl_keygen.h"
#include "dip_curve_io.h"

#include <stdio.h>
#include <string.h>

static const char usage[] = "usage: dealimportctl keygen PREFIX [--json]\n";

int ctl_keygen_main(ctl_opts_t *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char public[DIP_CURVE_KEY_LEN + 1], err[4200];
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            o->json = 1;
        } else if (c == 'h') {
            printf("%s\nWrites a new CURVE key pair for the control plane's "
                   "TCP endpoint:\nPREFIX.key (the secret key, mode 0600) "
                   "and PREFIX.pub (the public key),\nand prints the public "
                   "key. Neither file may exist yet.\n\n"
                   "For the supervisor: DEALIMPORT_CONTROL_CURVE_SECRET_FILE="
                   "PREFIX.key, and give\nclients PREFIX.pub "
                   "(--server-key). For a client: copy PREFIX.pub into the\n"
                   "supervisor's DEALIMPORT_CONTROL_CURVE_CLIENTS_DIR and "
                   "use --key PREFIX.key.\n",
                   usage);
            return CTL_EXIT_OK;
        } else {
            return ctl_usage(usage, "dealimportctl keygen: unknown option '%s'",
                             argv[optind - 1]);
        }
    }
    if (optind + 1 != argc || argv[optind][0] == '\0') {
        return ctl_usage(usage, "dealimportctl keygen: give one PREFIX");
    }
    if (dip_curve_keygen(argv[optind], public, err, sizeof(err)) < 0)
        return ctl_fail(o, CTL_EXIT_REFUSED, "refused", "%s", err);
    if (o->json) {
        json_t *j = json_pack("{s:i, s:b, s:s, s:s++, s:s++}", "v",
                              DIP_CTL_VERSION, "ok", 1, "public_key", public,
                              "secret_file", argv[optind], ".key",
                              "public_file", argv[optind], ".pub");
        ctl_print_json(j);
        json_decref(j);
    } else {
        printf("%s\n", public);
    }
    return CTL_EXIT_OK;
}
