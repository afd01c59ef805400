/*
 * weave's Kinesis client as a command, for tests/integration/test_kinesis.py,
 * which checks it against boto3 on the same kinesis-local. Settings come
 * from the environment only (KINESIS_ENDPOINT, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION), as a service's would.
 *
 *   kinesis_peer create STREAM SHARDS    CreateStream, then wait until it is ACTIVE
 *   kinesis_peer put STREAM FILE         wv_kinesis_put_records of FILE's records,
 *                                        one a line: KEY<TAB>HEX[<TAB>HASHKEY];
 *                                        prints "INDEX SHARD SEQUENCE" for each
 *   kinesis_peer read STREAM COUNT       a reader per shard (each in its own
 *                                        fiber) from TRIM_HORIZON until COUNT
 *                                        records came; prints "SHARD SEQUENCE
 *                                        KEY HEX ARRIVAL_MS" for each
 *   kinesis_peer shards STREAM           "SHARD START_HASH END_HASH" for each shard
 *
 * Exit 0 on success; else 1 with wv_errmsg() on stderr, and the errno's
 * name ("ENOENT") on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/kinesis.h>

static int argc_;
static char **argv_;

static int hex_value(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* FILE's records, parsed in place: the line's text holds them. */
static int put(wv_kinesis *k)
{
    FILE *f = fopen(argv_[3], "r");
    if (!f)
        return wv_fail(-errno, "cannot open %s", argv_[3]);
    size_t cap = 0, n = 0;
    wv_kinesis_entry *e = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &line_cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        char *key = strdup(line), *hex = strchr(key, '\t');
        if (!hex) {
            rc = wv_fail(-EINVAL, "line %zu: KEY<TAB>HEX[<TAB>HASHKEY]", n + 1);
            free(key);
            break;
        }
        *hex++ = '\0';
        char *hash = strchr(hex, '\t');
        if (hash)
            *hash++ = '\0';
        size_t bytes = strlen(hex) / 2;
        unsigned char *data = (unsigned char *)hex; /* decoded in place */
        for (size_t i = 0; i < bytes; i++)
            data[i] = (unsigned char)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            e = realloc(e, cap * sizeof *e);
        }
        e[n++] = (wv_kinesis_entry){
            .partition_key = key, .data = data, .len = bytes, .explicit_hash_key = hash};
    }
    free(line);
    fclose(f);
    wv_kinesis_put_result *res = calloc(n ? n : 1, sizeof *res);
    if (rc == 0)
        rc = wv_kinesis_put_records(k, argv_[2], e, n, res);
    for (size_t i = 0; rc == 0 && i < n; i++)
        printf("%zu %s %s\n", i, res[i].shard_id, res[i].sequence_number);
    for (size_t i = 0; i < n; i++)
        free((void *)e[i].partition_key);
    free(e);
    free(res);
    return rc;
}

typedef struct shard_reader {
    wv_kinesis *k;
    const char *shard;
    int *left; /* records still wanted, shared by the readers */
    wv_group *g;
} shard_reader;

static int read_shard(void *arg)
{
    shard_reader *s = arg;
    wv_kinesis_reader *r;
    int rc = wv_kinesis_reader_open(s->k, argv_[2], s->shard,
                                    &(wv_kinesis_reader_opts){.poll_ms = 50, .limit = 500}, &r);
    wv_kinesis_batch b = {0};
    while (rc == 0 && *s->left > 0) {
        int got = wv_kinesis_reader_next(r, &b);
        if (got <= 0) {
            rc = got;
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            const wv_kinesis_record *rec = &b.records[i];
            printf("%s %s %s ", s->shard, rec->sequence_number, rec->partition_key);
            for (size_t j = 0; j < rec->len; j++)
                printf("%02x", ((const unsigned char *)rec->data)[j]);
            printf("%s %lld\n", rec->len ? "" : "-", (long long)rec->arrival_ms);
        }
        *s->left -= got;
    }
    if (*s->left <= 0)
        wv_group_cancel(s->g); /* every record is in: the other readers stop */
    wv_kinesis_batch_free(&b);
    wv_kinesis_reader_free(r);
    if (rc < 0 && rc != -ECANCELED)
        fprintf(stderr, "kinesis_peer: shard %s: %s\n", s->shard, wv_errmsg());
    return rc == -ECANCELED ? 0 : rc;
}

static int read_all(wv_kinesis *k)
{
    wv_kinesis_shard_list l = {0};
    int rc = wv_kinesis_list_shards(k, argv_[2], 0, &l);
    int left = atoi(argv_[3]);
    wv_group *g = rc == 0 ? wv_group_new() : NULL;
    shard_reader *readers = calloc(l.n ? l.n : 1, sizeof *readers);
    int64_t old = wv_deadline_set(wv_after_ms(60000));
    for (size_t i = 0; g && i < l.n; i++) {
        readers[i] = (shard_reader){.k = k, .shard = l.shards[i].shard_id, .left = &left, .g = g};
        wv_group_spawn(g, read_shard, &readers[i], NULL);
    }
    if (g) {
        rc = wv_group_join(g);
        wv_group_free(g);
    }
    wv_deadline_set(old);
    if (rc == 0 && left > 0)
        rc = wv_fail(-EIO, "%d records never came", left);
    free(readers);
    wv_kinesis_shard_list_free(&l);
    return rc;
}

static int shards(wv_kinesis *k)
{
    wv_kinesis_shard_list l = {0};
    int rc = wv_kinesis_list_shards(k, argv_[2], 1, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        printf("%s %s %s\n", l.shards[i].shard_id, l.shards[i].starting_hash_key,
               l.shards[i].ending_hash_key);
    wv_kinesis_shard_list_free(&l);
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    wv_kinesis *k;
    int rc = wv_kinesis_new(NULL, &k);
    if (rc < 0) {
        fprintf(stderr, "kinesis_peer: %s\n", wv_errmsg());
        return rc;
    }
    const char *cmd = argv_[1];
    if (strcmp(cmd, "create") == 0 && argc_ == 4) {
        rc = wv_kinesis_create_stream(k, argv_[2], atoi(argv_[3]));
        if (rc == 0)
            rc = wv_kinesis_wait_active(k, argv_[2], 30000);
    } else if (strcmp(cmd, "put") == 0 && argc_ == 4) {
        rc = put(k);
    } else if (strcmp(cmd, "read") == 0 && argc_ == 4) {
        rc = read_all(k);
    } else if (strcmp(cmd, "shards") == 0 && argc_ == 3) {
        rc = shards(k);
    } else {
        rc = wv_fail(-EINVAL, "usage: see the top of tests/integration/kinesis_peer.c");
    }
    wv_kinesis_free(k);
    if (rc < 0) {
        /* wv_errmsg belongs to this fiber: said here, not after wv_main */
        fflush(stdout);
        fprintf(stderr, "kinesis_peer: %s\n", wv_errmsg());
        printf("%s\n", rc == -ENOENT ? "ENOENT" : rc == -EINVAL ? "EINVAL" : "ERROR");
    }
    return rc;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    if (argc < 2) {
        fprintf(stderr, "usage: see the top of tests/integration/kinesis_peer.c\n");
        return 2;
    }
    return wv_main(&(wv_main_opts){.shards = 1}, run, NULL) < 0 ? 1 : 0;
}
