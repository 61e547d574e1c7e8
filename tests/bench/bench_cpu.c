/*
 * bench_cpu: the worker's CPU per row on a file of the original service's
 * shape (deal name, value, stage, status, contract type, contact, a custom
 * budget field, notes; about 13% of rows rejected by the mapper). Run by
 * `scripts/bench cpu`, which wraps the worker in callgrind or /usr/bin/time
 * through DEALIMPORT_WORKER_PATH and reads the figures from their output.
 *
 *   bench_cpu gen FILE ROWS BAD_PER_MILLE   writes the file, prints
 *                                           "rows R good G rejected B"
 *   bench_cpu import FILE LOGFILE           imports it once through the real
 *                                           supervisor on the dev stack
 *
 * Every row is a pure function of (line, seed), so a smaller file is a
 * prefix of a bigger one with the same mix: the difference of two runs
 * cancels the worker's startup exactly.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dip_bson.h"
#include "it_check.h"
#include "it_env.h"

#define SEED 0x5eedULL
#define BUDGET_ID "65a1b2c3d4e5f60718293a4c"

static const char header[] = "Deal Name,Value,Stage,Status,Contract Type,"
                             "Contact,Budget,Notes\n";

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Value\":\"value\",\"Stage\":\"stage_id\","
    "\"Status\":\"status\",\"Contract Type\":\"contract_type\","
    "\"Contact\":\"contact_name\",\"Budget\":\"" BUDGET_ID "\","
    "\"Notes\":\"description\"}";

static const char *const companies[] = {"Acme",    "TechStart", "Global",
                                        "Initech", "Umbrella",  "Stark",
                                        "Wayne",   "Hooli"};
static const char *const values[] = {"5000",     "12,500.50", "$5,000",
                                     "USD 7500", "980",       "250000",
                                     "1,200",    "€3,400.00"};
static const char *const stages[] = {
    "Lead",   "Qualified",       "Proposal",  "Negotiation",
    "Closed", "Contract Review", "Discovery", "Demo"};
static const char *const statuses[] = {"open",         "Open", "won",
                                       "Closed - Won", "lost", ""};
static const char *const contracts[] = {"monthly", "One Time", "Annual",
                                        "quarterly", ""};
static const char *const contacts[] = {"John Doe", "Jane Smith", "Bob Johnson",
                                       "María García", "Li Wei"};
static const char *const notes[] = {
    "Follow up next week",
    "\"Asked for a discount, see email, call back\"",
    "Renewal of the 2024 contract; decision maker is the CFO",
    "",
    "Met at the trade fair. Interested in the premium plan and onboarding",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Writes line `line` (from 1); returns 1 when the mapper must reject it. */
static int write_row(FILE *f, uint64_t line, unsigned bad_per_mille)
{
    uint64_t r = mix(SEED ^ (line * 0x9E3779B97F4A7C15ULL));
    uint64_t r2 = mix(r);
    int bad = (r % 1000) < bad_per_mille;
    int kind = (int)((r2 >> 40) % 5);
    const char *value = values[(r >> 10) % N(values)];
    const char *stage = stages[(r >> 14) % N(stages)];
    const char *status = statuses[(r >> 18) % N(statuses)];
    const char *contract = contracts[(r >> 22) % N(contracts)];
    char name[96];
    snprintf(name, sizeof(name), "%s Deal %llu",
             companies[(r >> 26) % N(companies)], (unsigned long long)line);
    if (bad) {
        switch (kind) {
        case 0:
            value = "12abc";
            break;
        case 1:
            status = "pending";
            break;
        case 2:
            contract = "weekly";
            break;
        case 3:
            name[0] = '\0';
            break;
        default:
            stage = "  ";
            break;
        }
    }
    fprintf(f, "%s,\"%s\",%s,%s,%s,%s,%llu,%s\n", name, value, stage, status,
            contract, contacts[(r >> 30) % N(contacts)],
            (unsigned long long)(1000 + (r2 % 90000)),
            notes[(r >> 34) % N(notes)]);
    return bad;
}

static int gen(const char *path, uint64_t rows, unsigned bad_per_mille)
{
    FILE *f = fopen(path, "w");
    uint64_t bad = 0;
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fputs(header, f);
    for (uint64_t line = 1; line <= rows; line++)
        bad += (uint64_t)write_row(f, line, bad_per_mille);
    if (fclose(f) != 0) {
        perror(path);
        return 1;
    }
    printf("rows %llu good %llu rejected %llu\n", (unsigned long long)rows,
           (unsigned long long)(rows - bad), (unsigned long long)bad);
    return 0;
}

static int import(const char *path, const char *log)
{
    it_env_t env;
    bson_oid_t account, user, pipeline, qid;
    pid_t sup;
    bson_t q;
    int rc = it_env_init(&env, "benchcpu");
    if (rc)
        return rc == 77 ? 1 : rc;
    bson_oid_init(&account, NULL);
    bson_oid_init(&user, NULL);
    it_pipeline(&env, &account, &pipeline);
    it_put_file(&env, "imports/deals/bench/cpu.csv", path);
    sup = it_supervisor_start(&env, NULL, log);
    it_enqueue(&env, "imports/deals/bench/cpu.csv", &account, &user, &pipeline,
               mappings, &qid);
    rc = it_wait_final(&env, &qid, 3600 * 1000, &q);
    if (rc < 0 || strcmp(it_str(&q, "status"), "completed") != 0) {
        fprintf(stderr, "bench_cpu: the import did not complete (%s: %s)\n",
                it_str(&q, "status"), it_str(&q, "error"));
        rc = 1;
    } else {
        printf("added %lld errors %lld\n",
               (long long)dip_bson_get_int(&q, "progress.added", -1),
               (long long)dip_bson_get_int(&q, "progress.errors", -1));
        rc = 0;
    }
    bson_destroy(&q);
    it_process_stop(sup, SIGTERM, 60000);
    it_env_release(&env);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "gen") == 0)
        return gen(argv[2], strtoull(argv[3], NULL, 10),
                   (unsigned)strtoul(argv[4], NULL, 10));
    if (argc == 4 && strcmp(argv[1], "import") == 0)
        return import(argv[2], argv[3]);
    fprintf(stderr, "usage: bench_cpu gen FILE ROWS BAD_PER_MILLE | "
                    "import FILE LOGFILE\n");
    return 2;
}
