/*
 * it_gen: every row is a pure function of (seed, line, kind), so the file is
 * written once, streaming, and the checkers rebuild any row to know what its
 * deal or its error must hold, without keeping the file in memory.
 */
#include "it_gen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    C_NAME,
    C_VALUE,
    C_CURRENCY,
    C_STAGE,
    C_STATUS,
    C_CONTRACT,
    C_DATE,
    C_PROB,
    C_CONTACT,
    C_EMAIL,
    C_PHONE,
    C_COMPANY,
    C_NOTES,
    C_REGION,
    C_IGNORED,
    NCOLS
};

#define CELL_BUF 160
#define CUSTOM_ID "65a1b2c3d4e5f60718293a4b"
#define BIG_CELL (70 * 1000)
#define BIG_ROW (1100 * 1000)

static const char *const header[NCOLS] = {
    "Deal Name", "Amount",     "Currency",    "Stage",   "Status",
    "Contract",  "Close Date", "Probability", "Contact", "Email",
    "Phone",     "Company",    "Notes",       "Region",  "Ignored"};

static const char mappings[] =
    "{\"Deal Name\":\"name\",\"Amount\":\"value\",\"Currency\":\"currency\","
    "\"Stage\":\"stage_id\",\"Status\":\"status\",\"Contract\":"
    "\"contract_type\",\"Close Date\":\"expected_close_date\","
    "\"Probability\":\"probability\",\"Contact\":\"contact_name\","
    "\"Email\":\"contact_email\",\"Phone\":\"contact_phone\","
    "\"Company\":\"company_name\",\"Notes\":\"description\","
    "\"Region\":\"" CUSTOM_ID "\"}";

/* Stage names as written, and normalized. */
static const char *const stages[] = {"Lead",
                                     "Qualified",
                                     "Proposal Sent",
                                     "Negotiation",
                                     "Closed",
                                     "Contract Review",
                                     "On Hold",
                                     "Discovery",
                                     "Demo",
                                     "Follow Up",
                                     "N\xc3\xa9gociation",
                                     "Won Back"};
#define NSTAGES (sizeof(stages) / sizeof(stages[0]))

typedef struct {
    const char *text;
    const char *canon;
} word_t;

static const word_t statuses[] = {
    {"", "open"},
    {"open", "open"},
    {"Open", "open"},
    {" OPEN ", "open"},
    {"won", "won"},
    {"Won", "won"},
    {"closed_won", "won"},
    {"Closed-Won", "won"},
    {"Closed - Won", "won"},
    {"Closed\xe2\x80\x93Won", "won"},
    {"lost", "lost"},
    {"Closed Lost", "lost"},
    {"closed-lost", "lost"},
    {"Abandoned", "abandoned"},
};

static const word_t contracts[] = {
    {"", NULL},
    {"one-time", "one_time"},
    {"One Time", "one_time"},
    {"monthly", "monthly"},
    {"Monthly", "monthly"},
    {"Quarterly", "quarterly"},
    {"semi-annually", "semi_annually"},
    {"Semi Annually", "semi_annually"},
    {"annually", "annually"},
    {"Annual", "annually"},
    {"yearly", "annually"},
    {"YEARLY", "annually"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* What each bad kind puts where, and the error it must give. */
static const struct {
    const char *name;
    int column; /* the spoiled column, -1 for none */
    const char *text;
    const char *field;
    const char *words;
} kinds[IT_ROW_KINDS] = {
    [IT_ROW_GOOD] = {"good", -1, NULL, NULL, NULL},
    [IT_ROW_BAD_VALUE] = {"bad value", C_VALUE, "12abc", "value",
                          "is not an amount"},
    [IT_ROW_BAD_STATUS] = {"bad status", C_STATUS, "pending", "status",
                           "is not a deal status"},
    [IT_ROW_BAD_CONTRACT] = {"bad contract type", C_CONTRACT, "weekly",
                             "contract_type", "is not a contract type"},
    [IT_ROW_BAD_DATE] = {"bad date", C_DATE, "next week", "expected_close_date",
                         "is not a date"},
    [IT_ROW_BAD_PROBABILITY] = {"bad probability", C_PROB, "150%",
                                "probability",
                                "is not a percentage from 0 to 100"},
    [IT_ROW_BAD_EMAIL] = {"bad email", C_EMAIL, "jane.example.com",
                          "contact_email", "is not an email address"},
    [IT_ROW_BAD_CURRENCY] = {"bad currency", C_CURRENCY, "Dollars", "currency",
                             "is not a 3-letter currency code"},
    [IT_ROW_NO_NAME] = {"missing name", C_NAME, "", "name", "name is required"},
    [IT_ROW_NO_STAGE] = {"missing stage", C_STAGE, "   ", "stage_id",
                         "stage_id is required"},
    [IT_ROW_TOO_MANY_CELLS] = {"too many cells", -1, NULL, "",
                               "more cells than the header"},
    [IT_ROW_NUL] = {"NUL byte", C_COMPANY, NULL, "company_name", "NUL byte"},
    [IT_ROW_CELL_TOO_BIG] = {"cell over 64 KiB", C_NOTES, "", "description",
                             "longer than 65536 bytes"},
    [IT_ROW_TOO_BIG] = {"row over 1 MiB", -1, NULL, "",
                        "longer than 1048576 bytes"},
};

#define SMALL_KINDS (IT_ROW_NUL) /* IT_ROW_BAD_VALUE .. IT_ROW_NUL */

struct it_gen {
    uint64_t rows;
    unsigned seed;
    uint8_t *kind; /* [rows + 1] */
    uint64_t count[IT_ROW_KINDS + 1];
    unsigned stages_used; /* bit i: stages[i] used by a good row */
};

typedef struct {
    char cell[NCOLS][CELL_BUF];
    size_t len[NCOLS];
    /* 1: written as is, never quoted; 2: quoted without doubling the
     * quotes inside, as some export tools write (5" screens) */
    int raw[NCOLS];
    size_t ncells;
    size_t fill;       /* bytes of filler in the notes cell */
    const char *extra; /* written after the last cell */
    const char *eol;
    const char *blank; /* a blank line after the row, or NULL */
    /* what the deal must hold */
    int has_value;
    double value;
    char currency[4];
    unsigned stage;
    const char *status, *contract;
    int has_date;
    int64_t date_ms;
    int has_prob;
    double prob;
} row_t;

/* ---- randomness ------------------------------------------------------ */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t next(rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned pick(rng_t *r, unsigned n)
{
    return (unsigned)(next(r) % n);
}

static rng_t rng_for(unsigned seed, uint64_t line, uint64_t salt)
{
    rng_t r = {(uint64_t)seed * 0xD1B54A32D192ED03ULL ^
               line * 0x9E3779B97F4A7C15ULL ^ salt};
    next(&r);
    return r;
}

/* ---- rows ------------------------------------------------------------ */

static void set(row_t *row, int c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set(row_t *row, int c, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(row->cell[c], CELL_BUF, fmt, ap);
    va_end(ap);
    row->len[c] = n < 0 ? 0 : (size_t)n;
}

static void grouped(char *out, size_t outlen, uint64_t n)
{
    char digits[32];
    size_t len, o = 0;
    snprintf(digits, sizeof(digits), "%llu", (unsigned long long)n);
    len = strlen(digits);
    for (size_t i = 0; i < len && o + 2 < outlen; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

static void amount(row_t *row, rng_t *r)
{
    static const char *const codes[] = {"USD", "EUR", "GBP"};
    uint64_t n = next(r) % 10000000ULL;
    unsigned cents = pick(r, 100), fmt = pick(r, 10);
    char g[40], canon[48], code[4] = "";
    const char *cur = row->currency;
    snprintf(canon, sizeof(canon), "%llu", (unsigned long long)n);
    grouped(g, sizeof(g), n);
    /* A marker must agree with the currency column when that is set. */
    if ((fmt == 7 && *cur && strcmp(cur, "EUR") != 0) ||
        (fmt == 8 && *cur && strcmp(cur, "GBP") != 0))
        fmt = 3;
    if (fmt == 5 || fmt == 6)
        snprintf(code, sizeof(code), "%s", *cur ? cur : codes[pick(r, 3)]);
    row->has_value = 1;
    switch (fmt) {
    case 0:
        row->has_value = 0;
        set(row, C_VALUE, "%s", "");
        break;
    case 1:
        set(row, C_VALUE, "%s", canon);
        break;
    case 2:
        set(row, C_VALUE, "%s", g);
        break;
    case 3:
        snprintf(canon, sizeof(canon), "%llu.%02u", (unsigned long long)n,
                 cents);
        set(row, C_VALUE, "%s", canon);
        break;
    case 4:
        snprintf(canon, sizeof(canon), "%llu.%02u", (unsigned long long)n,
                 cents);
        set(row, C_VALUE, "$%s.%02u", g, cents);
        break;
    case 5:
        set(row, C_VALUE, "%s %s", code, canon);
        break;
    case 6:
        set(row, C_VALUE, "%s%s", canon, code);
        break;
    case 7:
        snprintf(canon, sizeof(canon), "%llu.%02u", (unsigned long long)n,
                 cents);
        set(row, C_VALUE, "\xe2\x82\xac%s.%02u", g, cents);
        memcpy(code, "EUR", 4);
        break;
    case 8:
        set(row, C_VALUE, "\xc2\xa3%s", canon);
        memcpy(code, "GBP", 4);
        break;
    default:
        snprintf(canon, sizeof(canon), "0");
        set(row, C_VALUE, "0");
        break;
    }
    row->value = strtod(canon, NULL);
    if (!*cur && *code)
        memcpy(row->currency, code, 4);
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    return (int64_t)timegm(&tm) * 1000;
}

static void date(row_t *row, rng_t *r)
{
    int y = 2020 + (int)pick(r, 11), mo = 1 + (int)pick(r, 12);
    int d = 1 + (int)pick(r, 28), h = (int)pick(r, 24), mi = (int)pick(r, 60);
    int s = (int)pick(r, 60);
    row->has_date = 1;
    switch (pick(r, 7)) {
    case 0:
        row->has_date = 0;
        set(row, C_DATE, "%s", "");
        break;
    case 1:
        set(row, C_DATE, "%04d-%02d-%02d", y, mo, d);
        row->date_ms = utc_ms(y, mo, d, 0, 0, 0);
        break;
    case 2:
        set(row, C_DATE, "%02d/%02d/%04d", mo, d, y);
        row->date_ms = utc_ms(y, mo, d, 0, 0, 0);
        break;
    case 3:
        set(row, C_DATE, "%d/%d/%04d", mo, d, y);
        row->date_ms = utc_ms(y, mo, d, 0, 0, 0);
        break;
    case 4:
        set(row, C_DATE, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, h, mi, s);
        row->date_ms = utc_ms(y, mo, d, h, mi, s);
        break;
    case 5:
        set(row, C_DATE, "%04d-%02d-%02d %02d:%02d", y, mo, d, h, mi);
        row->date_ms = utc_ms(y, mo, d, h, mi, 0);
        break;
    default:
        set(row, C_DATE, "%04d-%02d-%02dT%02d:%02d:%02d+02:00", y, mo, d, h, mi,
            s);
        row->date_ms = utc_ms(y, mo, d, h, mi, s) - 2 * 3600 * 1000;
        break;
    }
}

static void probability(row_t *row, rng_t *r)
{
    int p = (int)pick(r, 100);
    row->has_prob = 1;
    switch (pick(r, 5)) {
    case 0:
        row->has_prob = 0;
        set(row, C_PROB, "%s", "");
        break;
    case 1:
        set(row, C_PROB, "%d", p);
        row->prob = p;
        break;
    case 2:
        set(row, C_PROB, "%d%%", p);
        row->prob = p;
        break;
    case 3:
        set(row, C_PROB, "%d.5 %%", p);
        row->prob = p + 0.5;
        break;
    default:
        set(row, C_PROB, "100%%");
        row->prob = 100;
        break;
    }
}

static void stage(row_t *row, rng_t *r)
{
    const char *s;
    char buf[CELL_BUF];
    size_t o = 0;
    unsigned v = pick(r, 5);
    row->stage = pick(r, NSTAGES);
    s = stages[row->stage];
    for (size_t i = 0; s[i] && o + 3 < sizeof(buf); i++) {
        char c = s[i];
        if (v == 1 && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (v == 2 && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        buf[o++] = c;
        if (v == 3 && c == ' ')
            buf[o++] = ' ';
    }
    buf[o] = '\0';
    if (v == 4)
        set(row, C_STAGE, "  %s ", buf);
    else
        set(row, C_STAGE, "%s", buf);
}

static void currency(row_t *row, rng_t *r)
{
    static const char *const cells[] = {"", "USD", "eur", " GBP ", "chf"};
    static const char *const canon[] = {"", "USD", "EUR", "GBP", "CHF"};
    unsigned i = pick(r, N(cells));
    set(row, C_CURRENCY, "%s", cells[i]);
    snprintf(row->currency, sizeof(row->currency), "%s", canon[i]);
}

static void texts(row_t *row, rng_t *r, uint64_t line)
{
    unsigned long long n = (unsigned long long)line;
    switch (pick(r, 7)) {
    case 0:
        set(row, C_NAME, "Deal %llu", n);
        break;
    case 1:
        set(row, C_NAME, "  Deal %llu  ", n);
        break;
    case 2:
        set(row, C_NAME, "Acme, Inc. deal %llu", n);
        break;
    case 3:
        set(row, C_NAME, "The \"Big\" one %llu", n);
        break;
    case 4:
        set(row, C_NAME, "Caf\xc3\xa9 M\xc3\xbcller %llu", n);
        break;
    case 5:
        /* a quote inside an unquoted cell is data */
        set(row, C_NAME, "5\" screens %llu", n);
        row->raw[C_NAME] = 1;
        break;
    default:
        /* a quote followed by text inside a quoted cell, too */
        set(row, C_NAME, "OVERSIZE 32\" THICK \"CORD\" %llu", n);
        row->raw[C_NAME] = 2;
        break;
    }
    switch (pick(r, 3)) {
    case 0:
        set(row, C_CONTACT, "%s", "");
        break;
    case 1:
        set(row, C_CONTACT, "Jane Doe %llu", n);
        break;
    default:
        set(row, C_CONTACT, "Zo\xc3\xab O'Brien");
        break;
    }
    switch (pick(r, 4)) {
    case 0:
        set(row, C_EMAIL, "%s", "");
        break;
    case 1:
        set(row, C_EMAIL, "user%llu@example.com", n);
        break;
    case 2:
        set(row, C_EMAIL, "  First.Last%llu@Example.ORG ", n);
        break;
    default:
        set(row, C_EMAIL, "o'brien+%llu@mail.example.co.uk", n);
        break;
    }
    if (pick(r, 2))
        set(row, C_PHONE, "+1 (555) 010-%04u", (unsigned)(line % 10000));
    else
        set(row, C_PHONE, "%s", "");
    switch (pick(r, 4)) {
    case 0:
        set(row, C_COMPANY, "%s", "");
        break;
    case 1:
        set(row, C_COMPANY, "Acme %llu", n);
        break;
    case 2:
        set(row, C_COMPANY, "Soci\xc3\xa9t\xc3\xa9 G\xc3\xa9n\xc3\xa9rale");
        break;
    default:
        set(row, C_COMPANY, "Smith, Jones & Co");
        break;
    }
    switch (pick(r, 4)) {
    case 0:
        set(row, C_NOTES, "%s", "");
        break;
    case 1:
        set(row, C_NOTES, "plain note %llu", n);
        break;
    case 2:
        set(row, C_NOTES, "Line one\nline \"two\", three");
        break;
    default:
        set(row, C_NOTES, "multi\r\nline %llu\r\n", n);
        break;
    }
    switch (pick(r, 4)) {
    case 0:
        set(row, C_REGION, "%s", "");
        break;
    case 1:
        set(row, C_REGION, "EMEA");
        break;
    case 2:
        set(row, C_REGION, "  APAC ");
        break;
    default:
        set(row, C_REGION, "North America");
        break;
    }
    switch (pick(r, 3)) {
    case 0:
        set(row, C_IGNORED, "%s", "");
        break;
    case 1:
        set(row, C_IGNORED, "12abc");
        break;
    default:
        set(row, C_IGNORED, "not,a,date");
        break;
    }
}

static void spoil(row_t *row, it_row_t kind)
{
    if (kinds[kind].text != NULL && kinds[kind].column >= 0) {
        set(row, kinds[kind].column, "%s", kinds[kind].text);
        row->raw[kinds[kind].column] = 0;
        if (row->ncells <= (size_t)kinds[kind].column)
            row->ncells = (size_t)kinds[kind].column + 1;
    }
    switch (kind) {
    case IT_ROW_TOO_MANY_CELLS:
        row->ncells = NCOLS;
        row->extra = ",surplus,cells";
        break;
    case IT_ROW_NUL:
        memcpy(row->cell[C_COMPANY], "Acme\0Corp", 10);
        row->len[C_COMPANY] = 9;
        row->raw[C_COMPANY] = 1;
        if (row->ncells <= C_COMPANY)
            row->ncells = C_COMPANY + 1;
        break;
    case IT_ROW_CELL_TOO_BIG:
    case IT_ROW_TOO_BIG:
        row->fill = kind == IT_ROW_CELL_TOO_BIG ? BIG_CELL : BIG_ROW;
        row->len[C_NOTES] = 0;
        row->raw[C_NOTES] = 1;
        if (row->ncells <= C_NOTES)
            row->ncells = C_NOTES + 1;
        break;
    default:
        break;
    }
}

static void make_row(const it_gen_t *self, uint64_t line, row_t *row)
{
    rng_t r = rng_for(self->seed, line, 1);
    unsigned e;
    memset(row, 0, sizeof(*row));
    texts(row, &r, line);
    currency(row, &r);
    amount(row, &r);
    stage(row, &r);
    e = pick(&r, N(statuses));
    set(row, C_STATUS, "%s", statuses[e].text);
    row->status = statuses[e].canon;
    e = pick(&r, N(contracts));
    set(row, C_CONTRACT, "%s", contracts[e].text);
    row->contract = contracts[e].canon;
    date(row, &r);
    probability(row, &r);
    /* Trailing empty cells may be left out: the reader pads with ''. */
    row->ncells = NCOLS;
    while (row->ncells > 1 && row->len[row->ncells - 1] == 0 && pick(&r, 2))
        row->ncells--;
    e = pick(&r, 20);
    row->eol = e < 15 ? "\r\n" : e < 19 ? "\n" : "\r";
    if (pick(&r, 200) == 0) {
        static const char *const blanks[] = {"\r\n", ",,,,\n", "   \n"};
        row->blank = blanks[pick(&r, 3)];
    }
    spoil(row, (it_row_t)self->kind[line]);
}

/* ---- construction ---------------------------------------------------- */

it_gen_t *it_gen_new(uint64_t rows, unsigned seed, unsigned bad_per_mille,
                     unsigned huge)
{
    it_gen_t *self = calloc(1, sizeof(*self));
    unsigned next_kind = 0;
    if (self == NULL)
        return NULL;
    self->rows = rows;
    self->seed = seed;
    self->kind = calloc(rows + 1, 1);
    if (self->kind == NULL) {
        free(self);
        return NULL;
    }
    for (uint64_t line = 1; line <= rows; line++) {
        rng_t r = rng_for(seed, line, 2);
        if (pick(&r, 1000) < bad_per_mille)
            self->kind[line] =
                (uint8_t)(IT_ROW_BAD_VALUE + next_kind++ % SMALL_KINDS);
    }
    for (unsigned k = 0; k < 2 * huge && rows > 0; k++) {
        uint64_t line = 1 + rows * (k + 1) / (2 * huge + 1);
        if (line > rows)
            line = rows;
        self->kind[line] =
            (uint8_t)(k % 2 ? IT_ROW_TOO_BIG : IT_ROW_CELL_TOO_BIG);
    }
    for (uint64_t line = 1; line <= rows; line++) {
        self->count[self->kind[line]]++;
        if (self->kind[line] != IT_ROW_GOOD) {
            self->count[IT_ROW_KINDS]++;
        } else {
            row_t row;
            make_row(self, line, &row);
            self->stages_used |= 1u << row.stage;
        }
    }
    return self;
}

void it_gen_destroy(it_gen_t **self_p)
{
    if (self_p == NULL || *self_p == NULL)
        return;
    free((*self_p)->kind);
    free(*self_p);
    *self_p = NULL;
}

uint64_t it_gen_rows(const it_gen_t *self)
{
    return self->rows;
}

uint64_t it_gen_count(const it_gen_t *self, it_row_t kind)
{
    return kind <= IT_ROW_KINDS ? self->count[kind] : 0;
}

it_row_t it_gen_kind(const it_gen_t *self, uint64_t line)
{
    return line >= 1 && line <= self->rows ? (it_row_t)self->kind[line]
                                           : IT_ROW_GOOD;
}

const char *it_gen_mappings(void)
{
    return mappings;
}

const char *it_gen_custom_id(void)
{
    return CUSTOM_ID;
}

const char *it_gen_kind_field(it_row_t kind)
{
    return kind < IT_ROW_KINDS && kinds[kind].field ? kinds[kind].field : "";
}

const char *it_gen_kind_words(it_row_t kind)
{
    return kind < IT_ROW_KINDS && kinds[kind].words ? kinds[kind].words : "";
}

const char *it_gen_kind_name(it_row_t kind)
{
    return kind < IT_ROW_KINDS ? kinds[kind].name : "?";
}

/* ---- writing --------------------------------------------------------- */

static int needs_quotes(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
            return 1;
    return 0;
}

static void put_cell(FILE *f, const row_t *row, int c)
{
    const char *s = row->cell[c];
    size_t len = row->len[c];
    if (c == C_NOTES && row->fill > 0) {
        for (size_t i = 0; i < row->fill; i++)
            putc(row->fill == BIG_CELL ? 'x' : 'y', f);
        return;
    }
    if (row->raw[c] == 1 || !needs_quotes(s, len)) {
        fwrite(s, 1, len, f);
        return;
    }
    if (row->raw[c] == 2) {
        putc('"', f);
        fwrite(s, 1, len, f);
        putc('"', f);
        return;
    }
    putc('"', f);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            putc('"', f);
        putc(s[i], f);
    }
    putc('"', f);
}

int it_gen_write(it_gen_t *self, const char *path)
{
    FILE *f = fopen(path, "we");
    char *buf = malloc(1 << 20);
    int rc = 0;
    if (f == NULL || buf == NULL) {
        if (f)
            fclose(f);
        free(buf);
        return -1;
    }
    setvbuf(f, buf, _IOFBF, 1 << 20);
    fputs("\xef\xbb\xbf", f);
    for (int c = 0; c < NCOLS; c++) {
        if (c > 0)
            putc(',', f);
        fputs(header[c], f);
    }
    fputs("\r\n", f);
    for (uint64_t line = 1; line <= self->rows; line++) {
        row_t row;
        make_row(self, line, &row);
        for (size_t c = 0; c < row.ncells; c++) {
            if (c > 0)
                putc(',', f);
            put_cell(f, &row, (int)c);
        }
        if (row.extra)
            fputs(row.extra, f);
        /* The last row ends without a line break, as many exports do. */
        if (line < self->rows) {
            fputs(row.eol, f);
            if (row.blank)
                fputs(row.blank, f);
        }
    }
    if (ferror(f))
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    free(buf);
    return rc;
}

/* ---- checking -------------------------------------------------------- */

static void trimmed(const char *s, size_t len, const char **out, size_t *olen)
{
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
                       s[len - 1] == '\r' || s[len - 1] == '\n'))
        len--;
    *out = s;
    *olen = len;
}

static int say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* The string at key equals the trimmed cell (or is absent when the cell is
 * empty and absent_if_empty). */
static int check_text(const bson_t *deal, const char *key, const row_t *row,
                      int c, int absent_if_empty, char *why, size_t whylen)
{
    bson_iter_t it;
    const char *want, *got;
    size_t wlen;
    uint32_t glen;
    trimmed(row->cell[c], c < (int)row->ncells ? row->len[c] : 0, &want, &wlen);
    if (!bson_iter_init(&it, deal) || !bson_iter_find_descendant(&it, key, &it))
        return wlen == 0 && absent_if_empty
                   ? 0
                   : say(why, whylen, "'%s' is missing, want '%.*s'", key,
                         (int)wlen, want);
    if (wlen == 0 && absent_if_empty)
        return say(why, whylen, "'%s' is present for an empty cell", key);
    if (!BSON_ITER_HOLDS_UTF8(&it))
        return say(why, whylen, "'%s' is not a string", key);
    got = bson_iter_utf8(&it, &glen);
    if (glen != wlen || memcmp(got, want, wlen) != 0)
        return say(why, whylen, "'%s' is '%s', want '%.*s'", key, got,
                   (int)wlen, want);
    return 0;
}

static int check_double(const bson_t *deal, const char *key, int present,
                        double want, char *why, size_t whylen)
{
    bson_iter_t it;
    int has = bson_iter_init_find(&it, deal, key);
    if (!present)
        return has ? say(why, whylen, "'%s' is present for an empty cell", key)
                   : 0;
    if (!has || !BSON_ITER_HOLDS_DOUBLE(&it))
        return say(why, whylen, "'%s' is missing or not a double", key);
    if (bson_iter_double(&it) != want)
        return say(why, whylen, "'%s' is %.17g, want %.17g", key,
                   bson_iter_double(&it), want);
    return 0;
}

static int check_word(const bson_t *deal, const char *key, const char *want,
                      char *why, size_t whylen)
{
    bson_iter_t it;
    int has = bson_iter_init_find(&it, deal, key);
    if (want == NULL || *want == '\0')
        return has ? say(why, whylen, "'%s' is present for an empty cell", key)
                   : 0;
    if (!has || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), want) != 0)
        return say(why, whylen, "'%s' is '%s', want '%s'", key,
                   has && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL)
                                                    : "(missing)",
                   want);
    return 0;
}

static int normalized_stage(unsigned i, char *out, size_t outlen)
{
    const char *s = stages[i];
    size_t o = 0;
    for (; *s && o + 1 < outlen; s++)
        out[o++] = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    out[o] = '\0';
    return 0;
}

size_t it_gen_stage_count(const it_gen_t *self)
{
    size_t n = 0;
    for (unsigned i = 0; i < NSTAGES; i++)
        n += (self->stages_used >> i) & 1u;
    return n;
}

int it_gen_uses_stage(const it_gen_t *self, const char *name)
{
    char buf[CELL_BUF];
    for (unsigned i = 0; i < NSTAGES; i++) {
        normalized_stage(i, buf, sizeof(buf));
        if (strcmp(buf, name) == 0)
            return (self->stages_used >> i) & 1u;
    }
    return 0;
}

int it_gen_check_deal(const it_gen_t *self, const bson_t *deal,
                      const char *stage_name, char *why, size_t whylen)
{
    static const char *const allowed[] = {"_id",
                                          "name",
                                          "value",
                                          "currency",
                                          "stage_id",
                                          "status",
                                          "contract_type",
                                          "expected_close_date",
                                          "probability",
                                          "description",
                                          "contact_name",
                                          "contact_email",
                                          "contact_phone",
                                          "company_name",
                                          "additional_info",
                                          "pipeline_id",
                                          "account_id",
                                          "owner",
                                          "created_by",
                                          "tags",
                                          "source",
                                          "created_at",
                                          "updated_at",
                                          "import"};
    bson_iter_t it;
    int64_t line;
    row_t row;
    char key[64], stage_want[CELL_BUF];
    if (!bson_iter_init(&it, deal) ||
        !bson_iter_find_descendant(&it, "import.line", &it))
        return say(why, whylen, "a deal without import.line");
    line = bson_iter_as_int64(&it);
    if (line < 1 || (uint64_t)line > self->rows)
        return say(why, whylen, "a deal for line %lld, which the file has not",
                   (long long)line);
    if (self->kind[line] != IT_ROW_GOOD)
        return say(why, whylen, "line %lld is a %s row but has a deal",
                   (long long)line, kinds[self->kind[line]].name);
    make_row(self, (uint64_t)line, &row);
    bson_iter_init(&it, deal);
    while (bson_iter_next(&it)) {
        int ok = 0;
        for (size_t i = 0; i < N(allowed) && !ok; i++)
            ok = strcmp(bson_iter_key(&it), allowed[i]) == 0;
        if (!ok)
            return say(why, whylen, "line %lld: unexpected field '%s'",
                       (long long)line, bson_iter_key(&it));
    }
    normalized_stage(row.stage, stage_want, sizeof(stage_want));
    snprintf(key, sizeof(key), "additional_info.%s", CUSTOM_ID);
    if (check_text(deal, "name", &row, C_NAME, 0, why, whylen) ||
        check_double(deal, "value", row.has_value, row.value, why, whylen) ||
        check_word(deal, "currency", row.currency, why, whylen) ||
        check_word(deal, "status", row.status, why, whylen) ||
        check_word(deal, "contract_type", row.contract, why, whylen) ||
        check_double(deal, "probability", row.has_prob, row.prob, why,
                     whylen) ||
        check_text(deal, "contact_name", &row, C_CONTACT, 1, why, whylen) ||
        check_text(deal, "contact_email", &row, C_EMAIL, 1, why, whylen) ||
        check_text(deal, "contact_phone", &row, C_PHONE, 1, why, whylen) ||
        check_text(deal, "company_name", &row, C_COMPANY, 1, why, whylen) ||
        check_text(deal, "description", &row, C_NOTES, 1, why, whylen) ||
        check_text(deal, key, &row, C_REGION, 0, why, whylen) ||
        check_word(deal, "source", "csv", why, whylen)) {
        size_t n = strlen(why);
        snprintf(why + n, whylen - n, " (line %lld)", (long long)line);
        return -1;
    }
    if (strcmp(stage_name ? stage_name : "", stage_want) != 0)
        return say(why, whylen, "line %lld: stage '%s', want '%s'",
                   (long long)line, stage_name ? stage_name : "(none)",
                   stage_want);
    if (bson_iter_init_find(&it, deal, "expected_close_date") != row.has_date ||
        (row.has_date && (!BSON_ITER_HOLDS_DATE_TIME(&it) ||
                          bson_iter_date_time(&it) != row.date_ms)))
        return say(why, whylen,
                   "line %lld: expected_close_date is not %lld ms ('%s')",
                   (long long)line, (long long)row.date_ms, row.cell[C_DATE]);
    if (!bson_iter_init(&it, deal) ||
        !bson_iter_find_descendant(&it, "tags.0", &it) ||
        !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), "imported") != 0)
        return say(why, whylen, "line %lld: tags are not ['imported']",
                   (long long)line);
    return 0;
}

int it_gen_check_error(const it_gen_t *self, const bson_t *doc, char *why,
                       size_t whylen)
{
    bson_iter_t it, row_it;
    int64_t line;
    it_row_t kind;
    const char *field = "", *message = "";
    row_t row;
    if (!bson_iter_init_find(&it, doc, "line"))
        return say(why, whylen, "an error document without a line");
    line = bson_iter_as_int64(&it);
    if (line < 1 || (uint64_t)line > self->rows)
        return say(why, whylen,
                   "an error for line %lld, which the file has not",
                   (long long)line);
    kind = (it_row_t)self->kind[line];
    if (bson_iter_init_find(&it, doc, "field") && BSON_ITER_HOLDS_UTF8(&it))
        field = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "message") && BSON_ITER_HOLDS_UTF8(&it))
        message = bson_iter_utf8(&it, NULL);
    if (kind == IT_ROW_GOOD)
        return say(why, whylen, "line %lld is good but has an error: %s '%s'",
                   (long long)line, field, message);
    if (strcmp(field, kinds[kind].field) != 0)
        return say(why, whylen,
                   "line %lld (%s): field is '%s', want '%s' (message '%s')",
                   (long long)line, kinds[kind].name, field, kinds[kind].field,
                   message);
    if (strstr(message, kinds[kind].words) == NULL)
        return say(why, whylen, "line %lld (%s): message '%s' lacks '%s'",
                   (long long)line, kinds[kind].name, message,
                   kinds[kind].words);
    if (!bson_iter_init_find(&it, doc, "row") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &row_it))
        return say(why, whylen, "line %lld: no original row", (long long)line);
    make_row(self, (uint64_t)line, &row);
    /* The original row: the name and the offending cell as read. */
    for (int c = 0; bson_iter_next(&row_it); c++) {
        const char *got, *want;
        size_t glen, wlen;
        uint32_t len;
        int check = (c == C_NAME && kind != IT_ROW_TOO_BIG) ||
                    (c == kinds[kind].column && kinds[kind].text) ||
                    (c == NCOLS && kind == IT_ROW_TOO_MANY_CELLS);
        if (!check)
            continue;
        if (!BSON_ITER_HOLDS_UTF8(&row_it))
            return say(why, whylen, "line %lld: row cell %d is not a string",
                       (long long)line, c);
        got = bson_iter_utf8(&row_it, &len);
        trimmed(got, len, &got, &glen);
        if (c == NCOLS) {
            want = "surplus";
            wlen = 7;
        } else {
            trimmed(row.cell[c], row.len[c], &want, &wlen);
        }
        if (glen != wlen || memcmp(got, want, wlen) != 0)
            return say(why, whylen,
                       "line %lld: row cell %d is '%s', want '%.*s'",
                       (long long)line, c, got, (int)wlen, want);
    }
    if (kind == IT_ROW_NUL) {
        /* the NUL is kept visible as U+FFFD */
        if (!bson_iter_init_find(&it, doc, "row") ||
            !bson_iter_recurse(&it, &row_it))
            return -1;
        for (int c = 0; bson_iter_next(&row_it); c++)
            if (c == C_COMPANY &&
                strcmp(bson_iter_utf8(&row_it, NULL), "Acme\xef\xbf\xbd"
                                                      "Corp") != 0)
                return say(why, whylen, "line %lld: NUL cell is '%s'",
                           (long long)line, bson_iter_utf8(&row_it, NULL));
    }
    return 0;
}
