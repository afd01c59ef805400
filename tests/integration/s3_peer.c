/*
 * weave's S3 client as a command, for tests/integration/test_s3.py, which
 * checks it against boto3 on the same s3rver. Settings come from the
 * environment only (S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_REGION), as a service's would; WEAVE_PEER_PART_MIB sets the part
 * size.
 *
 *   s3_peer put BUCKET KEY FILE [TYPE [NAME=VALUE...]]  wv_s3_put_file, with metadata
 *   s3_peer get BUCKET KEY FILE                        wv_s3_get_file
 *   s3_peer cat BUCKET KEY                             wv_s3_get, the bytes to stdout
 *   s3_peer head BUCKET KEY                            size, type and each NAME=VALUE asked
 *   s3_peer list BUCKET PREFIX [DELIMITER]             every key (pages of 2), then "P prefix"
 *   s3_peer presign METHOD BUCKET KEY SECONDS          the URL
 *   s3_peer delete BUCKET KEY
 *
 * Exit 0 on success; else 1 with wv_errmsg() on stderr, and the errno's
 * name ("ENOENT") on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/s3.h>

static int argc_;
static char **argv_;

static int put(wv_s3 *s3)
{
    wv_httpc_header meta[16];
    size_t n = 0;
    for (int i = 6; i < argc_ && n < 16; i++) {
        char *eq = strchr(argv_[i], '=');
        if (!eq)
            return wv_fail(-EINVAL, "metadata is NAME=VALUE");
        *eq = '\0';
        meta[n++] = (wv_httpc_header){argv_[i], eq + 1};
    }
    return wv_s3_put_file(s3, argv_[2], argv_[3], argv_[4],
                          &(wv_s3_put_opts){.content_type = argc_ > 5 ? argv_[5] : NULL,
                                            .metadata = meta,
                                            .nmetadata = n});
}

static int cat(wv_s3 *s3)
{
    wv_s3_object o;
    int rc = wv_s3_get(s3, argv_[2], argv_[3], &o);
    if (rc == 0 && fwrite(o.body.p, 1, o.body.n, stdout) != o.body.n)
        rc = -EIO;
    wv_s3_object_free(&o);
    return rc;
}

static int head(wv_s3 *s3)
{
    wv_s3_object o;
    int rc = wv_s3_head(s3, argv_[2], argv_[3], &o);
    if (rc < 0)
        return rc;
    printf("size=%lld\ntype=%s\n", (long long)o.size, o.content_type);
    for (int i = 4; i < argc_; i++) {
        const char *v = wv_s3_object_meta(&o, argv_[i]);
        printf("%s=%s\n", argv_[i], v ? v : "(none)");
    }
    wv_s3_object_free(&o);
    return 0;
}

static int list(wv_s3 *s3)
{
    wv_s3_list_page page = {0};
    wv_s3_list_opts lo = {
        .prefix = argv_[3], .delimiter = argc_ > 4 ? argv_[4] : NULL, .max_keys = 2};
    int rc;
    do {
        if ((rc = wv_s3_list(s3, argv_[2], &lo, &page)) < 0)
            break;
        for (size_t i = 0; i < page.nobjects; i++)
            printf("%s\t%lld\n", page.objects[i].key, (long long)page.objects[i].size);
        for (size_t i = 0; i < page.nprefixes; i++)
            printf("P %s\n", page.prefixes[i]);
        lo.continuation_token = page.next_token;
    } while (page.truncated);
    wv_s3_list_free(&page);
    return rc;
}

static int presign(wv_s3 *s3)
{
    char *url;
    int rc = wv_s3_presign(s3, argv_[2], argv_[3], argv_[4], atoll(argv_[5]), &url);
    if (rc == 0) {
        printf("%s\n", url);
        free(url);
    }
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    const char *part = getenv("WEAVE_PEER_PART_MIB");
    wv_s3 *s3;
    int rc = wv_s3_new(&(wv_s3_opts){.part_size = part ? (size_t)atoi(part) << 20 : 0}, &s3);
    if (rc < 0) {
        fprintf(stderr, "s3_peer: %s\n", wv_errmsg());
        return rc;
    }
    const char *cmd = argv_[1];
    if (strcmp(cmd, "put") == 0 && argc_ >= 5)
        rc = put(s3);
    else if (strcmp(cmd, "get") == 0 && argc_ == 5)
        rc = wv_s3_get_file(s3, argv_[2], argv_[3], argv_[4]);
    else if (strcmp(cmd, "cat") == 0 && argc_ == 4)
        rc = cat(s3);
    else if (strcmp(cmd, "head") == 0 && argc_ >= 4)
        rc = head(s3);
    else if (strcmp(cmd, "list") == 0 && argc_ >= 4)
        rc = list(s3);
    else if (strcmp(cmd, "presign") == 0 && argc_ == 6)
        rc = presign(s3);
    else if (strcmp(cmd, "delete") == 0 && argc_ == 4)
        rc = wv_s3_delete(s3, argv_[2], argv_[3]);
    else
        rc = wv_fail(-EINVAL, "usage: see the top of tests/integration/s3_peer.c");
    wv_s3_free(s3);
    if (rc < 0) {
        /* wv_errmsg belongs to this fiber: said here, not after wv_main */
        fflush(stdout);
        fprintf(stderr, "s3_peer: %s\n", wv_errmsg());
        printf("%s\n", rc == -ENOENT ? "ENOENT" : rc == -EACCES ? "EACCES" : "ERROR");
    }
    return rc;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    if (argc < 2) {
        fprintf(stderr, "usage: see the top of tests/integration/s3_peer.c\n");
        return 2;
    }
    return wv_main(&(wv_main_opts){.shards = 1}, run, NULL) < 0 ? 1 : 0;
}
