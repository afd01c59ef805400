/*
 * bench/bench_s3.c: weave's multipart upload (wv_s3_upload) of generated
 * bytes to an S3 server, for the s3.put_multipart figure of
 * bench/run_httpc.sh. Its anchor, bench/httpc/boto3_upload.py, uploads
 * the same bytes from the same kind of source: a read callback that
 * copies them out of one 1 MiB block held in memory, no file.
 *
 *   bench_s3 etag MIB
 *       the MD5 of the MIB MiB (hex): the ETag s3rver gives the object,
 *       which it computes over the whole object, parts or not
 *   bench_s3 put BUCKET KEY MIB ETAG [SERVER_PID]
 *       upload MIB MiB to BUCKET/KEY with wv_s3_upload and the client's
 *       defaults (settings from the environment: S3_ENDPOINT,
 *       AWS_ACCESS_KEY_ID, ...), on one shard; then check the object
 *       (HEAD: its size, and ETAG) and delete it. Prints seconds= (the
 *       upload call alone), client_cpu= and server_cpu= (% of one core
 *       during it; the server's from /proc/SERVER_PID/stat, -1 without
 *       it), rss_mib= (this process's peak, VmHWM, at the end) and last
 *       value= (MB/s, MB = 10^6 bytes). A failed upload or check exits 1.
 *
 * The bytes: MiB number k of the stream is BLOCK with its first 8 bytes
 * replaced by k (little-endian), BLOCK[j] = ((j * 2654435761) mod 2^32)
 * >> 13, low 8 bits; so every part differs and a part out of place
 * changes the MD5.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "bench_util.h"
#include "weave/s3.h"

enum { CHUNK = 1 << 20, HEADER = 8 };

static unsigned char block[CHUNK];

static void block_init(void)
{
    for (uint32_t j = 0; j < CHUNK; j++)
        block[j] = (unsigned char)((uint32_t)(j * 2654435761u) >> 13);
}

/* The stream from pos to end, read as wv_s3_source wants it. */
typedef struct generated {
    uint64_t pos, end;
} generated;

static ssize_t generated_read(void *arg, void *buf, size_t n)
{
    generated *g = arg;
    unsigned char *out = buf;
    size_t done = 0;
    while (done < n && g->pos < g->end) {
        uint64_t k = g->pos / CHUNK;
        size_t j = (size_t)(g->pos % CHUNK);
        size_t take = CHUNK - j;
        if (take > n - done)
            take = n - done;
        if (take > g->end - g->pos)
            take = (size_t)(g->end - g->pos);
        memcpy(out + done, block + j, take);
        for (size_t i = j; i < HEADER && i < j + take; i++)
            out[done + i - j] = (unsigned char)(k >> (8 * i));
        done += take;
        g->pos += take;
    }
    return (ssize_t)done;
}

static int etag_main(uint64_t bytes)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(CHUNK), digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_md5(), NULL))
        return 1;
    generated g = {.end = bytes};
    ssize_t n;
    while ((n = generated_read(&g, buf, CHUNK)) > 0)
        EVP_DigestUpdate(md, buf, (size_t)n);
    EVP_DigestFinal_ex(md, digest, &len);
    for (unsigned int i = 0; i < len; i++)
        printf("%02x", digest[i]);
    printf("\n");
    EVP_MD_CTX_free(md);
    free(buf);
    return 0;
}

/* This process's peak resident set in KiB (VmHWM), -1 if unknown. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

typedef struct put_job {
    const char *bucket, *key, *etag;
    uint64_t bytes;
    pid_t server_pid;
} put_job;

/* The object is there, whole: its size and its ETag are the stream's. */
static int check_object(wv_s3 *s3, const put_job *job)
{
    wv_s3_object o;
    int rc = wv_s3_head(s3, job->bucket, job->key, &o);
    if (rc < 0)
        return rc;
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", job->etag);
    if (o.size != (int64_t)job->bytes || strcmp(o.etag, want) != 0)
        rc = wv_fail(-EIO, "the object is %" PRId64 " bytes with ETag %s, not %" PRIu64 " with %s",
                     o.size, o.etag, job->bytes, want);
    wv_s3_object_free(&o);
    return rc;
}

static int put_fiber(void *arg)
{
    put_job *job = arg;
    wv_deadline_set(wv_after_ms(600000)); /* never hang the bench */
    wv_s3 *s3;
    int rc = wv_s3_new(NULL, &s3);
    if (rc < 0) {
        fprintf(stderr, "bench_s3: %s\n", wv_errmsg());
        return rc;
    }
    generated g = {.end = job->bytes};
    wv_s3_source src = {generated_read, &g};
    cpu_mark a = cpu_mark_now(job->server_pid);
    rc = wv_s3_upload(s3, job->bucket, job->key, &src, NULL);
    cpu_mark b = cpu_mark_now(job->server_pid);
    if (rc == 0)
        rc = check_object(s3, job);
    if (rc < 0)
        fprintf(stderr, "bench_s3: %s\n", wv_errmsg());
    int deleted = wv_s3_delete(s3, job->bucket, job->key);
    if (deleted < 0)
        fprintf(stderr, "bench_s3: %s\n", wv_errmsg());
    wv_s3_free(s3);
    if (rc < 0 || deleted < 0)
        return rc < 0 ? rc : deleted;
    double wall = (double)(b.at - a.at) / 1e9;
    printf("seconds=%.3f\n", wall);
    printf("client_cpu=%.0f\n", 100 * (b.self - a.self) / wall);
    printf("server_cpu=%.0f\n",
           a.server >= 0 && b.server >= 0 ? 100 * (b.server - a.server) / wall : -1);
    printf("rss_mib=%.1f\n", (double)peak_rss_kib() / 1024);
    printf("value=%.1f\n", (double)job->bytes / 1e6 / wall);
    return 0;
}

static uint64_t mib_arg(const char *s)
{
    char *end;
    unsigned long long mib = strtoull(s, &end, 10);
    return *end || mib == 0 || mib > 1000000 ? 0 : (uint64_t)mib * CHUNK;
}

int main(int argc, char **argv)
{
    block_init();
    if (argc == 3 && strcmp(argv[1], "etag") == 0 && mib_arg(argv[2]))
        return etag_main(mib_arg(argv[2]));
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "put") == 0 && mib_arg(argv[4])) {
        put_job job = {.bucket = argv[2],
                       .key = argv[3],
                       .bytes = mib_arg(argv[4]),
                       .etag = argv[5],
                       .server_pid = argc == 7 ? (pid_t)atoi(argv[6]) : 0};
        return wv_main(&(wv_main_opts){.shards = 1}, put_fiber, &job) < 0 ? 1 : 0;
    }
    fprintf(stderr, "usage: bench_s3 etag MIB | bench_s3 put BUCKET KEY MIB ETAG [SERVER_PID]\n");
    return 2;
}
