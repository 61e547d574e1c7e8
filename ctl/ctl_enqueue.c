/*
 * ctl_enqueue: parses the enqueue options, checks what the worker would
 * refuse at once (ctl_precheck: mappings, header, pipeline), uploads the
 * file, and inserts the queue document; with --wait, follows it to its end
 * (ctl_wait). Works without a supervisor running: the next supervisor poll
 * picks the import up.
 */
#include "ctl_enqueue.h"
#include "ctl_client.h"
#include "ctl_precheck.h"
#include "ctl_wait.h"
#include "dip_bson.h"
#include "dip_mongo_io.h"
#include "dip_msg.h"
#include "dip_storage_io.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bson/bson.h>
#include <jansson.h>

#define MAX_MAPS 512

static const char usage[] =
    "usage: dealimportctl enqueue --file PATH --account ID --user ID "
    "--pipeline ID\n"
    "                             --map 'CSV Column=field' ... [--tags a,b]\n"
    "                             [--parent-account ID] [--client ID] "
    "[--dry-run] [--wait] [--json]\n"
    "                             [--date-order MDY|DMY|YMD|auto] "
    "[--decimal .|,|auto]\n"
    "                             [--mode create|update|upsert] "
    "[--match FIELD] [--success-file]\n";

/* 1 when s is one of the NULL-terminated words. */
static int one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

static int parse_id(const char *opt, const char *s, bson_oid_t *out)
{
    if (s == NULL || !bson_oid_is_valid(s, strlen(s)) || strlen(s) != 24) {
        fprintf(stderr, "dealimportctl: %s '%s' is not an ObjectId\n", opt,
                s ? s : "");
        return -1;
    }
    bson_oid_init_from_string(out, s);
    return 0;
}

static void random_hex(char *out, size_t n)
{
    FILE *f = fopen("/dev/urandom", "re");
    static const char hex[] = "0123456789abcdef";
    unsigned char b = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (f == NULL || fread(&b, 1, 1, f) != 1)
            b = (unsigned char)rand();
        out[i] = hex[b & 15];
    }
    out[n - 1] = '\0';
    if (f)
        fclose(f);
}

int ctl_enqueue_main(const dip_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"account", required_argument, NULL, 'a'},
        {"user", required_argument, NULL, 'u'},
        {"pipeline", required_argument, NULL, 'p'},
        {"map", required_argument, NULL, 'm'},
        {"tags", required_argument, NULL, 't'},
        {"parent-account", required_argument, NULL, 'P'},
        {"client", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"dry-run", no_argument, NULL, 'n'},
        {"date-order", required_argument, NULL, 'D'},
        {"decimal", required_argument, NULL, 'S'},
        {"wait", no_argument, NULL, 'w'},
        {"mode", required_argument, NULL, 'M'},
        {"match", required_argument, NULL, 'K'},
        {"success-file", no_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *account = NULL, *user = NULL, *pipeline = NULL;
    const char *tags = NULL, *parent = NULL, *client_id = NULL;
    const char *date_order = NULL, *decimal = NULL;
    const char *mode = NULL, *match = NULL;
    static const char *const modes[] = {"create", "update", "upsert", NULL};
    int success_file = 0;
    static const char *const orders[] = {"MDY", "DMY", "YMD", "auto", NULL};
    static const char *const decimals[] = {".", ",", "auto", NULL};
    const char *maps[MAX_MAPS];
    size_t nmaps = 0;
    int json = 0, dry_run = 0, wait = 0, c, rc = 1;
    bson_oid_t acc, usr, pip, par, cli, qid;
    char key[1024], hex[25], err[1024], rnd[17];
    const char *base, *db;
    dip_storage_t *st = NULL;
    mongoc_client_t *mc = NULL;
    mongoc_collection_t *queues = NULL;
    bson_t *doc = NULL, mappings = BSON_INITIALIZER;
    bson_error_t error;
    struct stat sb;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            file = optarg;
            break;
        case 'a':
            account = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'p':
            pipeline = optarg;
            break;
        case 'm':
            if (nmaps == MAX_MAPS) {
                fprintf(stderr, "dealimportctl: more than %d --map\n",
                        MAX_MAPS);
                return CTL_EXIT_USAGE;
            }
            maps[nmaps++] = optarg;
            break;
        case 't':
            tags = optarg;
            break;
        case 'P':
            parent = optarg;
            break;
        case 'C':
            client_id = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'n':
            dry_run = 1;
            break;
        case 'D':
            date_order = optarg;
            break;
        case 'S':
            decimal = optarg;
            break;
        case 'w':
            wait = 1;
            break;
        case 'M':
            mode = optarg;
            break;
        case 'K':
            match = optarg;
            break;
        case 'O':
            success_file = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            printf(
                "\nUploads PATH to DEALIMPORT_STORAGE_URL under a fresh key "
                "and queues a deal\nimport of it, as the CRM's import API "
                "does. Prints the new queue id.\nEach --map names a CSV "
                "column and the deal field (or custom-field id) it\nfills; "
                "the text after the last '=' is the field.\nWith --dry-run the "
                "whole file is read, mapped and validated as an import\n"
                "would be, and nothing is written but its line errors, "
                "its error file and\nits verdict (`dealimportctl run ID` "
                "imports it for real afterwards).\n"
                "Before anything is uploaded, the mappings (known deal "
                "fields or custom field\nids), the file's header (every "
                "mapped column present) and the pipeline (it\nexists in "
                "the account) are checked as the worker would: a problem "
                "exits 1\nwith the worker's sentence.\n"
                "With --wait, follows the import to its end: its status "
                "changes on stderr,\nthe outcome on stdout; exit 0 "
                "completed, 2 failed or cancelled.\n"
                "--date-order and --decimal say how the file writes dates and "
                "numbers\n"
                "(additional_data.format); 'auto' decides each column from "
                "the whole file.\n--mode update or upsert changes the deals "
                "that --match finds (deal_id,\nexternal_id or a custom field "
                "id; the column mapped to it holds the key):\nupdate changes "
                "only existing deals, upsert also creates the others.\n"
                "--success-file asks for a file of every written line beside "
                "the error file.\n");
            return 0;
        default:
            return ctl_usage(usage,
                             "dealimportctl enqueue: unknown option "
                             "'%s'",
                             argv[optind - 1]);
        }
    }
    if (optind < argc || !file || !account || !user || !pipeline || nmaps == 0)
        return ctl_usage(usage, "dealimportctl: enqueue needs --file, "
                                "--account, --user, --pipeline and at least "
                                "one --map");
    if (parse_id("--account", account, &acc) ||
        parse_id("--user", user, &usr) ||
        parse_id("--pipeline", pipeline, &pip) ||
        (parent && parse_id("--parent-account", parent, &par)) ||
        (client_id && parse_id("--client", client_id, &cli)))
        return CTL_EXIT_USAGE;
    if ((date_order && !one_of(date_order, orders)) ||
        (decimal && !one_of(decimal, decimals)))
        return ctl_usage(usage,
                         "dealimportctl: --date-order is MDY, DMY, YMD or "
                         "auto, and --decimal is '.', ',' or auto");
    /* The worker decides the rest (a custom field's index, the mapping);
     * what can be told here is told here. */
    if (mode && !one_of(mode, modes))
        return ctl_usage(usage, "dealimportctl: --mode is create, update or "
                                "upsert");
    if (mode && strcmp(mode, "create") != 0 && match == NULL)
        return ctl_usage(usage,
                         "dealimportctl: --mode %s needs --match FIELD "
                         "(deal_id, external_id or a custom field id)",
                         mode);
    for (size_t i = 0; i < nmaps; i++) {
        const char *eq = strrchr(maps[i], '=');
        if (eq == NULL || eq == maps[i] || eq[1] == '\0') {
            fprintf(stderr,
                    "dealimportctl: --map '%s' is not 'CSV Column=field'\n",
                    maps[i]);
            return CTL_EXIT_USAGE;
        }
    }
    if (stat(file, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "dealimportctl: cannot read '%s'\n", file);
        return 1;
    }
    for (size_t i = 0; i < nmaps; i++) {
        const char *eq = strrchr(maps[i], '=');
        bson_append_utf8(&mappings, maps[i], (int)(eq - maps[i]), eq + 1, -1);
    }
    if (ctl_precheck_file(&mappings, mode && strcmp(mode, "update") == 0, file,
                          err, sizeof(err)) < 0) {
        fprintf(stderr, "dealimportctl: not queued: %s\n", err);
        rc = CTL_EXIT_REFUSED;
        goto cleanup;
    }
    mc = dip_mongo_client_new(cfg->mongodb_uri, "dealimportctl", &db, err,
                              sizeof(err));
    if (mc == NULL) {
        fprintf(stderr, "dealimportctl: %s\n", err);
        rc = CTL_EXIT_CONFIG;
        goto cleanup;
    }
    switch (ctl_precheck_pipeline(mc, db, &acc, &pip, err, sizeof(err))) {
    case CTL_PRECHECK_OK:
        break;
    case CTL_PRECHECK_NOTFOUND:
        fprintf(stderr, "dealimportctl: not queued: %s\n", err);
        rc = CTL_EXIT_REFUSED;
        goto cleanup;
    default:
        fprintf(stderr, "dealimportctl: %s\n", err);
        rc = CTL_EXIT_UNAVAILABLE;
        goto cleanup;
    }

    base = strrchr(file, '/');
    base = base ? base + 1 : file;
    random_hex(rnd, sizeof(rnd));
    snprintf(key, sizeof(key), "imports/deals/%s/%s", rnd, base);
    st = dip_storage_new(cfg, err, sizeof(err));
    if (st == NULL ||
        dip_storage_put_file(st, key, file, err, sizeof(err)) != 0) {
        fprintf(stderr, "dealimportctl: upload failed: %s\n", err);
        rc = CTL_EXIT_UNAVAILABLE;
        goto cleanup;
    }

    bson_oid_init(&qid, NULL);
    doc = bson_new();
    BSON_APPEND_OID(doc, "_id", &qid);
    BSON_APPEND_UTF8(doc, "source", "deals");
    BSON_APPEND_UTF8(doc, "status", "pending");
    BSON_APPEND_BOOL(doc, "in_progress", false);
    BSON_APPEND_OID(doc, "user_id", &usr);
    BSON_APPEND_OID(doc, "account_id", &acc);
    if (parent)
        BSON_APPEND_OID(doc, "parent_account", &par);
    if (client_id)
        BSON_APPEND_OID(doc, "client_id", &cli);
    {
        bson_t arr, item, ad, t;
        BSON_APPEND_ARRAY_BEGIN(doc, "csv", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &item);
        BSON_APPEND_UTF8(&item, "key", key);
        BSON_APPEND_UTF8(&item, "name", base);
        bson_append_document_end(&arr, &item);
        bson_append_array_end(doc, &arr);
        BSON_APPEND_DOCUMENT(doc, "mappings", &mappings);
        BSON_APPEND_DOCUMENT_BEGIN(doc, "additional_data", &ad);
        BSON_APPEND_OID(&ad, "pipeline_id", &pip);
        BSON_APPEND_ARRAY_BEGIN(&ad, "tags", &t);
        if (tags && *tags) {
            char *copy = strdup(tags), *save = NULL, *tok;
            int i = 0;
            for (tok = strtok_r(copy, ",", &save); tok;
                 tok = strtok_r(NULL, ",", &save)) {
                char k[24];
                while (*tok == ' ')
                    tok++;
                if (*tok == '\0')
                    continue;
                snprintf(k, sizeof(k), "%d", i++);
                BSON_APPEND_UTF8(&t, k, tok);
            }
            free(copy);
        }
        bson_append_array_end(&ad, &t);
        if (date_order || decimal) {
            bson_t fmt;
            BSON_APPEND_DOCUMENT_BEGIN(&ad, "format", &fmt);
            if (date_order)
                BSON_APPEND_UTF8(&fmt, "date_order", date_order);
            if (decimal)
                BSON_APPEND_UTF8(&fmt, "decimal", decimal);
            bson_append_document_end(&ad, &fmt);
        }
        if (mode)
            BSON_APPEND_UTF8(&ad, "mode", mode);
        if (match)
            BSON_APPEND_UTF8(&ad, "match", match);
        if (success_file)
            BSON_APPEND_BOOL(&ad, "success_file", true);
        bson_append_document_end(doc, &ad);
    }
    if (dry_run)
        BSON_APPEND_BOOL(doc, "dry_run", true);
    BSON_APPEND_DATE_TIME(doc, "created_at", dip_bson_now_ms());
    BSON_APPEND_DATE_TIME(doc, "updated_at", dip_bson_now_ms());

    queues = mongoc_client_get_collection(mc, db, "queues");
    if (!mongoc_collection_insert_one(queues, doc, NULL, NULL, &error)) {
        fprintf(stderr, "dealimportctl: cannot queue the import: %s\n",
                error.message);
        rc = CTL_EXIT_UNAVAILABLE;
        goto cleanup;
    }
    bson_oid_to_string(&qid, hex);
    if (json) {
        json_t *o = json_pack("{s:i, s:b, s:s, s:s}", "v", 1, "ok", 1, "id",
                              hex, "key", key);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else
        printf("%s\n", hex);
    fflush(stdout);
    rc = wait ? ctl_wait_import(mc, db, &qid, hex, 1000, json) : 0;
cleanup:
    bson_destroy(&mappings);
    bson_destroy(doc);
    mongoc_collection_destroy(queues);
    mongoc_client_destroy(mc);
    dip_storage_destroy(&st);
    return rc;
}
