/*
 * Large objects in parts: the multipart upload (wv_s3_upload,
 * wv_s3_put_file) and the ranged download (wv_s3_download,
 * wv_s3_get_file).
 *
 * Both run on slots: parts_in_flight buffers of up to part_size bytes,
 * each carried by a fiber of a group while its part is on the wire. The
 * calling fiber is the only one that touches the source or the sink: it
 * fills a free slot from the source and starts its part (upload), or
 * hands the next part in order to the sink and starts the fetch of a
 * later one (download). So memory stays at part_size x parts_in_flight
 * whatever the object's size, the source is read and the sink written in
 * order, one call at a time, and the parts in between travel at once. A
 * slot's fiber reports by setting its slot's result and the transfer's
 * event; it never suspends to report, so a part cut short by the group's
 * cancellation still reports.
 *
 * An upload that fails is aborted (AbortMultipartUpload). When the
 * calling fiber can still wait (not cancelled, at least a second left
 * before its deadline) the abort is sent at once; otherwise, or when that
 * try ran out of time, from a fiber of its own under a fresh 10 s
 * deadline, so the caller returns on time and the parts still go. The
 * error the caller gets is the first failure's, its message kept across
 * the abort.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3/s3_internal.h"

enum { ETAG_MAX = 128, MSG_MAX = 1024 };

/* ============================================================== upload */

typedef struct part_result {
    char etag[ETAG_MAX];
    char sha256_b64[S3_SHA256_B64];
} part_result;

typedef struct upload upload;

typedef struct up_slot {
    upload *up;
    char *buf;
    size_t len;
    int number; /* the part's number, 1-based */
    bool busy;  /* its fiber has not reported yet */
    int rc;
} up_slot;

struct upload {
    wv_s3 *s3;
    const char *bucket, *key, *what;
    char *upload_id;
    size_t part_size;
    up_slot slots[S3_MAX_IN_FLIGHT];
    int nslots;
    part_result *parts; /* parts[number - 1] */
    int nparts, cap_parts;
    wv_event progress; /* a slot reported */
    wv_group *g;
    int failed; /* the first part's failure */
    char failed_msg[MSG_MAX];
};

static int part_fiber(void *arg)
{
    up_slot *sl = arg;
    upload *up = sl->up;
    wv_s3 *s3 = up->s3;
    char what[S3_WHAT_MAX + 24];
    snprintf(what, sizeof what, "%s (part %d)", up->what, sl->number);
    s3_body_hashes hashes;
    int rc = s3_hash_body(sl->buf, sl->len, s3->checksum == WV_S3_CHECKSUM_MD5,
                          s3->checksum == WV_S3_CHECKSUM_SHA256, &hashes);
    wv_httpc_response resp = {0};
    if (rc == 0) {
        char number[16];
        snprintf(number, sizeof number, "%d", sl->number);
        aws_param params[] = {{"partNumber", number}, {"uploadId", up->upload_id}};
        wv_httpc_header h[1];
        size_t nh = 0;
        if (s3->checksum == WV_S3_CHECKSUM_MD5)
            h[nh++] = (wv_httpc_header){"content-md5", hashes.md5_b64};
        else if (s3->checksum == WV_S3_CHECKSUM_SHA256)
            h[nh++] = (wv_httpc_header){"x-amz-checksum-sha256", hashes.sha256_b64};
        rc = s3_send(s3,
                     &(s3_request){.method = "PUT",
                                   .bucket = up->bucket,
                                   .key = up->key,
                                   .params = params,
                                   .nparams = 2,
                                   .headers = h,
                                   .nheaders = nh,
                                   .body = sl->len ? sl->buf : "",
                                   .body_len = sl->len,
                                   .payload_hash = hashes.sha256_hex,
                                   .max_response = S3_MAX_ERROR_REPLY,
                                   .what = what},
                     &resp);
    }
    if (rc == 0) {
        const char *etag = wv_httpc_header_get(&resp, "ETag");
        part_result *pr = &up->parts[sl->number - 1]; /* read after the wait: parts may move */
        if (!etag || !*etag || strlen(etag) >= ETAG_MAX || strpbrk(etag, "<>&"))
            rc = wv_fail(-EPROTO, "%s: the reply has no usable ETag", what);
        else {
            snprintf(pr->etag, sizeof pr->etag, "%s", etag);
            snprintf(pr->sha256_b64, sizeof pr->sha256_b64, "%s", hashes.sha256_b64);
        }
    }
    wv_httpc_response_free(&resp);
    if (rc < 0 && up->failed == 0 && rc != -ECANCELED) {
        up->failed = rc;
        snprintf(up->failed_msg, sizeof up->failed_msg, "%s", wv_errmsg());
    }
    sl->rc = rc;
    sl->busy = false;
    wv_event_set(&up->progress);
    return rc;
}

/* The next free slot, waiting for one; -errno when a part failed or the
 * wait was cut short. */
static int free_slot(upload *up, up_slot **out)
{
    for (;;) {
        if (up->failed)
            return up->failed;
        for (int i = 0; i < up->nslots; i++)
            if (!up->slots[i].busy) {
                *out = &up->slots[i];
                return 0;
            }
        wv_event_clear(&up->progress);
        int rc = wv_event_wait(&up->progress);
        if (rc < 0)
            return wv_fail(rc, "%s: %s while parts were in flight", up->what, wv_strerror(rc));
    }
}

static int all_reported(upload *up)
{
    for (;;) {
        if (up->failed)
            return up->failed;
        bool busy = false;
        for (int i = 0; i < up->nslots; i++)
            busy = busy || up->slots[i].busy;
        if (!busy)
            return 0;
        wv_event_clear(&up->progress);
        int rc = wv_event_wait(&up->progress);
        if (rc < 0)
            return wv_fail(rc, "%s: %s while parts were in flight", up->what, wv_strerror(rc));
    }
}

/* Fill buf from src until it is full or src ends: the bytes read, or the
 * source's error. */
static ssize_t fill(const wv_s3_source *src, char *buf, size_t cap, const char *what)
{
    size_t n = 0;
    while (n < cap) {
        ssize_t got = src->read(src->arg, buf + n, cap - n);
        if (got < 0) {
            char msg[MSG_MAX];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            return wv_fail((int)got, "%s: reading the source: %s", what,
                           msg[0] ? msg : wv_strerror((int)got));
        }
        if (got == 0)
            break;
        if ((size_t)got > cap - n)
            return wv_fail(-EINVAL, "%s: the source's read returned more than it was asked for",
                           what);
        n += (size_t)got;
    }
    return (ssize_t)n;
}

static int create_upload(upload *up, const wv_s3_put_opts *o)
{
    size_t nmeta = o ? o->nmetadata : 0;
    wv_httpc_header h[nmeta + 4];
    wv_buf mem = {0};
    int nh = s3_put_headers(up->s3, o, NULL, h, &mem, up->what);
    if (nh < 0) {
        wv_buf_free(&mem);
        return nh;
    }
    if (up->s3->checksum == WV_S3_CHECKSUM_SHA256)
        h[nh++] = (wv_httpc_header){"x-amz-checksum-algorithm", "SHA256"};
    aws_param params[] = {{"uploads", ""}};
    wv_httpc_response resp;
    int rc = s3_send(up->s3,
                     &(s3_request){.method = "POST",
                                   .bucket = up->bucket,
                                   .key = up->key,
                                   .params = params,
                                   .nparams = 1,
                                   .headers = h,
                                   .nheaders = (size_t)nh,
                                   .body = "",
                                   .what = up->what},
                     &resp);
    wv_buf_free(&mem);
    if (rc == 0) {
        s3_xml x = {.max_nodes = 64};
        rc = s3_parse_reply(&resp, "InitiateMultipartUploadResult", &x, up->what);
        const char *id = rc == 0 ? s3_xml_child_text(&x, 0, "UploadId") : NULL;
        if (rc == 0 && (!id || !*id))
            rc = wv_fail(-EPROTO, "%s: the reply has no UploadId", up->what);
        if (rc == 0 && !(up->upload_id = strdup(id)))
            rc = wv_fail(-ENOMEM, "%s: out of memory", up->what);
        s3_xml_free(&x);
    }
    wv_httpc_response_free(&resp);
    return rc;
}

static int complete_upload(upload *up)
{
    wv_buf body = {0};
    int rc = wv_buf_puts(&body, "<CompleteMultipartUpload "
                                "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    bool sha = up->s3->checksum == WV_S3_CHECKSUM_SHA256;
    for (int i = 0; rc == 0 && i < up->nparts; i++) {
        const part_result *pr = &up->parts[i];
        rc |= wv_buf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        rc |= wv_buf_html(&body, pr->etag, strlen(pr->etag));
        rc |= wv_buf_puts(&body, "</ETag>");
        if (sha)
            rc |= wv_buf_printf(&body, "<ChecksumSHA256>%s</ChecksumSHA256>", pr->sha256_b64);
        rc |= wv_buf_puts(&body, "</Part>");
    }
    rc |= wv_buf_puts(&body, "</CompleteMultipartUpload>");
    if (rc) {
        wv_buf_free(&body);
        return wv_fail(-ENOMEM, "%s: out of memory", up->what);
    }
    aws_param params[] = {{"uploadId", up->upload_id}};
    wv_httpc_response resp;
    rc = s3_send(up->s3,
                 &(s3_request){.method = "POST",
                               .bucket = up->bucket,
                               .key = up->key,
                               .params = params,
                               .nparams = 1,
                               .headers = &(wv_httpc_header){"content-type", "application/xml"},
                               .nheaders = 1,
                               .body = body.p,
                               .body_len = body.n,
                               .what = up->what},
                 &resp);
    wv_buf_free(&body);
    if (rc == 0) {
        s3_xml x = {.max_nodes = 64};
        rc = s3_parse_reply(&resp, "CompleteMultipartUploadResult", &x, up->what);
        s3_xml_free(&x);
    }
    wv_httpc_response_free(&resp);
    return rc;
}

/* ---------------------------------------------------------- aborting */

typedef struct abort_job {
    wv_s3 *s3;
    char *bucket, *key, *upload_id;
} abort_job;

static int send_abort(wv_s3 *s3, const char *bucket, const char *key, const char *upload_id)
{
    char what[S3_WHAT_MAX + 120];
    snprintf(what, sizeof what, "S3 ABORT %.80s/%.200s (upload %.100s)", bucket, key, upload_id);
    aws_param params[] = {{"uploadId", upload_id}};
    wv_httpc_response resp;
    int rc = s3_send(s3,
                     &(s3_request){.method = "DELETE",
                                   .bucket = bucket,
                                   .key = key,
                                   .params = params,
                                   .nparams = 1,
                                   .max_response = S3_MAX_ERROR_REPLY,
                                   .what = what},
                     &resp);
    wv_httpc_response_free(&resp);
    /* already gone (completed or aborted by someone else): nothing left */
    if (rc < 0 && rc != -ENOENT)
        wv_warn("%s failed, its parts may remain until a lifecycle rule removes them: %s", what,
                wv_errmsg());
    return rc == -ENOENT ? 0 : rc;
}

static void abort_job_free(abort_job *j)
{
    wv_s3_free(j->s3);
    free(j->bucket);
    free(j->key);
    free(j->upload_id);
    free(j);
}

static int abort_fiber(void *arg)
{
    abort_job *j = arg;
    wv_deadline_set(wv_after_ms(S3_ABORT_MS));
    send_abort(j->s3, j->bucket, j->key, j->upload_id);
    abort_job_free(j);
    return 0;
}

static void abort_in_background(upload *up)
{
    abort_job *j = calloc(1, sizeof *j);
    if (j) {
        j->bucket = strdup(up->bucket);
        j->key = strdup(up->key);
        j->upload_id = strdup(up->upload_id);
    }
    if (!j || !j->bucket || !j->key || !j->upload_id) {
        wv_warn("%s: out of memory: upload %s is not aborted", up->what, up->upload_id);
        if (j) {
            free(j->bucket);
            free(j->key);
            free(j->upload_id);
            free(j);
        }
        return;
    }
    s3_ref(up->s3);
    j->s3 = up->s3;
    int rc = wv_spawn(abort_fiber, j, &(wv_spawn_opts){.name = "s3-abort"});
    if (rc < 0) {
        wv_warn("%s: cannot start the abort of upload %s (%s): its parts may remain until a "
                "lifecycle rule removes them",
                up->what, up->upload_id, wv_strerror(rc));
        abort_job_free(j);
    }
}

/* Abort up's upload: at once when the caller can wait, else (or when
 * that try ran out of time) from a fiber of its own. Overwrites
 * wv_errmsg; the caller puts its own back. */
static void abort_upload(upload *up)
{
    if (!up->upload_id)
        return;
    int64_t left = wv_deadline() == WV_NEVER ? INT64_MAX : wv_deadline() - wv_now();
    if (wv_cancelled() || left < 1000 * S3_NS_PER_MS) {
        abort_in_background(up);
        return;
    }
    int64_t old = wv_deadline_set(left > S3_ABORT_MS * S3_NS_PER_MS ? wv_after_ms(S3_ABORT_MS)
                                                                    : wv_deadline());
    int rc = send_abort(up->s3, up->bucket, up->key, up->upload_id);
    wv_deadline_set(old);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        abort_in_background(up);
}

/* ---------------------------------------------------------- the upload */

static void upload_free(upload *up)
{
    wv_group_free(up->g);
    for (int i = 0; i < up->nslots; i++)
        free(up->slots[i].buf);
    free(up->parts);
    free(up->upload_id);
}

static int start_part(upload *up, up_slot *sl, int number)
{
    if (number > up->cap_parts) {
        int cap = up->cap_parts ? up->cap_parts * 2 : 64;
        if (cap > S3_MAX_PARTS)
            cap = S3_MAX_PARTS;
        part_result *p = realloc(up->parts, (size_t)cap * sizeof *p);
        if (!p)
            return wv_fail(-ENOMEM, "%s: out of memory", up->what);
        up->parts = p;
        up->cap_parts = cap;
    }
    memset(&up->parts[number - 1], 0, sizeof up->parts[0]);
    up->nparts = number;
    sl->number = number;
    sl->busy = true;
    sl->rc = 0;
    char name[32];
    snprintf(name, sizeof name, "s3-part-%d", number);
    int rc = wv_group_spawn(up->g, part_fiber, sl, &(wv_spawn_opts){.name = name});
    if (rc < 0) {
        sl->busy = false;
        /* a part that failed has cancelled the group: its error is the one */
        if (rc == -ECANCELED && up->failed)
            return wv_fail(up->failed, "%s", up->failed_msg);
        return wv_fail(rc, "%s: cannot start a fiber for part %d: %s", up->what, number,
                       wv_strerror(rc));
    }
    return 0;
}

/* The upload after its first part is in slot 0 (full): create, send
 * every part, complete. */
static int multipart(upload *up, const wv_s3_source *src, const wv_s3_put_opts *o)
{
    int rc = create_upload(up, o);
    if (rc < 0)
        return rc;
    if (!(up->g = wv_group_new()))
        return wv_fail(-ENOMEM, "%s: out of memory", up->what);
    rc = start_part(up, &up->slots[0], 1);
    bool more = true;
    for (int number = 2; rc == 0 && more; number++) {
        up_slot *sl = NULL;
        rc = free_slot(up, &sl);
        if (rc < 0)
            break;
        if (!sl->buf && !(sl->buf = malloc(up->part_size))) {
            rc = wv_fail(-ENOMEM, "%s: out of memory for a part of %zu bytes", up->what,
                         up->part_size);
            break;
        }
        ssize_t n = fill(src, sl->buf, up->part_size, up->what);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        more = (size_t)n == up->part_size;
        if (n == 0)
            break;
        if (number > S3_MAX_PARTS) {
            rc = wv_fail(-EFBIG, "%s: the source is longer than %d parts of %zu bytes", up->what,
                         S3_MAX_PARTS, up->part_size);
            break;
        }
        sl->len = (size_t)n;
        rc = start_part(up, sl, number);
    }
    if (rc == 0)
        rc = all_reported(up);
    if (rc == 0 && (rc = wv_group_join(up->g)) < 0 && up->failed)
        rc = wv_fail(up->failed, "%s", up->failed_msg);
    if (rc == 0)
        return complete_upload(up);
    if (up->failed && rc == up->failed)
        rc = wv_fail(rc, "%s", up->failed_msg);
    return rc;
}

static int upload_source(wv_s3 *s3, const char *bucket, const char *key, const wv_s3_source *src,
                         const wv_s3_put_opts *o, int64_t size_hint, size_t part_size,
                         const char *what)
{
    upload up = {
        .s3 = s3,
        .bucket = bucket,
        .key = key,
        .what = what,
        .part_size = part_size,
        .nslots = s3->parts_in_flight,
    };
    for (int i = 0; i < up.nslots; i++)
        up.slots[i].up = &up;
    /* the first part decides: a source that ends inside it is one PUT */
    size_t first =
        size_hint >= 0 && (uint64_t)size_hint < part_size ? (size_t)size_hint : part_size;
    up.slots[0].buf = malloc(first ? first : 1);
    if (!up.slots[0].buf)
        return wv_fail(-ENOMEM, "%s: out of memory for a part of %zu bytes", what, part_size);
    ssize_t n = fill(src, up.slots[0].buf, first, what);
    int rc;
    if (n < 0) {
        rc = (int)n;
    } else if ((size_t)n < part_size) {
        /* one PUT: read on, to be sure the source has ended when its size
         * was only a hint */
        char probe;
        ssize_t extra = (size_t)n == first && first < part_size ? fill(src, &probe, 1, what) : 0;
        if (extra < 0)
            rc = (int)extra;
        else if (extra > 0)
            rc = wv_fail(-EIO, "%s: the source grew past the size it had when the upload began",
                         what);
        else
            rc = wv_s3_put(s3, bucket, key, up.slots[0].buf, (size_t)n, o);
    } else {
        up.slots[0].len = (size_t)n;
        rc = multipart(&up, src, o);
        if (rc < 0) {
            char msg[MSG_MAX];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            if (up.g)
                wv_group_cancel(up.g);
            wv_group_free(up.g); /* waits for every part's fiber */
            up.g = NULL;
            abort_upload(&up);
            wv_fail(rc, "%s", msg);
        }
    }
    upload_free(&up);
    return rc;
}

int wv_s3_upload(wv_s3 *s3, const char *bucket, const char *key, const wv_s3_source *src,
                 const wv_s3_put_opts *o)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("UPLOAD", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3 || !src || !src->read)
        return wv_fail(-EINVAL, "%s: no client or no source", what);
    return upload_source(s3, bucket, key, src, o, -1, s3->part_size, what);
}

/* ---------------------------------------------------------- from a file */

typedef struct file_src {
    int fd;
    off_t at;
    /* the job */
    void *buf;
    size_t n;
    ssize_t got;
    const char *path;
} file_src;

static int pread_job(void *arg)
{
    file_src *f = arg;
    ssize_t got;
    do
        got = pread(f->fd, f->buf, f->n, f->at);
    while (got < 0 && errno == EINTR);
    f->got = got < 0 ? -errno : got;
    return 0;
}

static ssize_t file_read(void *arg, void *buf, size_t n)
{
    file_src *f = arg;
    f->buf = buf;
    f->n = n;
    int rc = wv_offload(pread_job, f);
    if (rc < 0)
        return rc;
    if (f->got < 0)
        return wv_fail((int)f->got, "%s: %s", f->path, wv_strerror((int)f->got));
    f->at += f->got;
    return f->got;
}

typedef struct open_job {
    const char *path;
    int flags;
    int fd;
    struct stat st;
} open_job;

static int open_job_run(void *arg)
{
    open_job *j = arg;
    j->fd = open(j->path, j->flags | O_CLOEXEC, 0600);
    if (j->fd < 0)
        return -errno;
    if (fstat(j->fd, &j->st) < 0) {
        int e = -errno;
        close(j->fd);
        j->fd = -1;
        return e;
    }
    return 0;
}

int wv_s3_put_file(wv_s3 *s3, const char *bucket, const char *key, const char *path,
                   const wv_s3_put_opts *o)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("PUT", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3 || !path)
        return wv_fail(-EINVAL, "%s: no client or no path", what);
    open_job oj = {.path = path, .flags = O_RDONLY, .fd = -1};
    rc = wv_offload(open_job_run, &oj);
    if (rc < 0) {
        if (oj.fd >= 0)
            close(oj.fd); /* opened, but the wait was cut short */
        return wv_fail(rc, "%s: cannot open %s: %s", what, path, wv_strerror(rc));
    }
    if (!S_ISREG(oj.st.st_mode)) {
        close(oj.fd);
        return wv_fail(-EINVAL, "%s: %s is not a regular file", what, path);
    }
    size_t part = s3->part_size;
    uint64_t size = (uint64_t)oj.st.st_size;
    if (size > (uint64_t)S3_MAX_PARTS * part) {
        /* whole MiB parts large enough for 10000 of them */
        uint64_t need = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        need = (need + S3_MIB - 1) / S3_MIB * S3_MIB;
        if (need > S3_MAX_PART) {
            close(oj.fd);
            return wv_fail(-EFBIG, "%s: %s is larger than S3's 10000 parts of 5 GiB", what, path);
        }
        part = (size_t)need;
    }
    file_src f = {.fd = oj.fd, .path = path};
    rc = upload_source(s3, bucket, key, &(wv_s3_source){file_read, &f}, o, (int64_t)size, part,
                       what);
    close(oj.fd);
    return rc;
}

/* ============================================================ download */

typedef struct download download;

typedef struct down_slot {
    download *dl;
    int64_t offset, len;
    wv_s3_object obj;
    bool ready; /* its fiber has reported */
    int rc;
} down_slot;

struct download {
    wv_s3 *s3;
    const char *bucket, *key, *what;
    const char *etag;
    int64_t size;
    down_slot *slots;
    int nslots;
    wv_event progress;
    wv_group *g;
    int failed; /* the first range's failure */
    char failed_msg[MSG_MAX];
};

static int range_fiber(void *arg)
{
    down_slot *sl = arg;
    download *dl = sl->dl;
    char what[S3_WHAT_MAX + 48];
    snprintf(what, sizeof what, "%s (bytes %" PRId64 "-%" PRId64 ")", dl->what, sl->offset,
             sl->offset + sl->len - 1);
    int rc = s3_get_object(dl->s3, "GET", dl->bucket, dl->key, sl->offset, sl->len, dl->etag,
                           (size_t)sl->len, &sl->obj, what);
    if (rc == 0 && strcmp(sl->obj.etag, dl->etag) != 0)
        rc = wv_fail(-ESTALE, "%s: the object changed during the download (ETag %.80s, then %.80s)",
                     what, dl->etag, sl->obj.etag);
    else if (rc == 0 && sl->obj.size != dl->size)
        rc = wv_fail(-ESTALE,
                     "%s: the object changed during the download (%" PRId64 " bytes, then %" PRId64
                     ")",
                     what, dl->size, sl->obj.size);
    else if (rc == 0 && (int64_t)sl->obj.body.n != sl->len)
        rc = wv_fail(-EPROTO, "%s: %zu bytes came for a range of %" PRId64, what, sl->obj.body.n,
                     sl->len);
    if (rc < 0) {
        wv_s3_object_free(&sl->obj);
        if (dl->failed == 0 && rc != -ECANCELED) {
            dl->failed = rc;
            snprintf(dl->failed_msg, sizeof dl->failed_msg, "%s", wv_errmsg());
        }
    }
    sl->rc = rc;
    sl->ready = true;
    wv_event_set(&dl->progress);
    return rc;
}

static int start_range(download *dl, down_slot *sl, int64_t offset, int64_t len)
{
    sl->offset = offset;
    sl->len = len;
    sl->ready = false;
    sl->rc = 0;
    int rc = wv_group_spawn(dl->g, range_fiber, sl, &(wv_spawn_opts){.name = "s3-range"});
    /* a range that failed has cancelled the group: its error is the one */
    if (rc == -ECANCELED && dl->failed)
        return wv_fail(dl->failed, "%s", dl->failed_msg);
    if (rc < 0)
        return wv_fail(rc, "%s: cannot start a fiber: %s", dl->what, wv_strerror(rc));
    return 0;
}

/* Fetch every range, up to nslots at once, and hand them to the sink in
 * order. */
static int download_parts(download *dl, const wv_s3_sink *sink)
{
    int64_t part = (int64_t)dl->s3->part_size;
    int64_t nparts = (dl->size + part - 1) / part;
    int64_t next_fetch = 0;
    int rc = 0;
    for (int64_t next = 0; rc == 0 && next < nparts; next++) {
        while (rc == 0 && next_fetch < nparts && next_fetch - next < dl->nslots) {
            int64_t off = next_fetch * part;
            int64_t len = dl->size - off < part ? dl->size - off : part;
            rc = start_range(dl, &dl->slots[next_fetch % dl->nslots], off, len);
            next_fetch++;
        }
        down_slot *sl = &dl->slots[next % dl->nslots];
        while (rc == 0 && !sl->ready && !dl->failed) {
            wv_event_clear(&dl->progress);
            rc = wv_event_wait(&dl->progress);
            if (rc < 0)
                rc = wv_fail(rc, "%s: %s while ranges were in flight", dl->what, wv_strerror(rc));
        }
        if (rc == 0 && dl->failed)
            rc = wv_fail(dl->failed, "%s", dl->failed_msg);
        if (rc == 0) {
            rc = sink->write(sink->arg, sl->obj.body.p, sl->obj.body.n);
            if (rc > 0)
                rc = 0;
            if (rc < 0) {
                char msg[MSG_MAX];
                snprintf(msg, sizeof msg, "%s", wv_errmsg());
                rc = wv_fail(rc, "%s: writing to the sink: %s", dl->what,
                             msg[0] ? msg : wv_strerror(rc));
            }
        }
        wv_s3_object_free(&sl->obj);
        sl->ready = false;
    }
    return rc;
}

int wv_s3_download(wv_s3 *s3, const char *bucket, const char *key, const wv_s3_sink *sink,
                   int64_t *size)
{
    if (size)
        *size = 0;
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("DOWNLOAD", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3 || !sink || !sink->write)
        return wv_fail(-EINVAL, "%s: no client or no sink", what);
    wv_s3_object head;
    rc = s3_get_object(s3, "HEAD", bucket, key, 0, 0, NULL, S3_HEAD_LIMIT, &head, what);
    if (rc < 0)
        return rc;
    download dl = {
        .s3 = s3,
        .bucket = bucket,
        .key = key,
        .what = what,
        .etag = head.etag,
        .size = head.size,
        .nslots = s3->parts_in_flight,
    };
    if (dl.size > 0) {
        dl.slots = calloc((size_t)dl.nslots, sizeof *dl.slots);
        dl.g = wv_group_new();
        if (!dl.slots || !dl.g)
            rc = wv_fail(-ENOMEM, "%s: out of memory", what);
        for (int i = 0; rc == 0 && i < dl.nslots; i++)
            dl.slots[i].dl = &dl;
        if (rc == 0)
            rc = download_parts(&dl, sink);
    }
    if (dl.g) {
        if (rc < 0) {
            char msg[MSG_MAX];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            wv_group_cancel(dl.g);
            wv_group_free(dl.g); /* waits for every range's fiber */
            wv_fail(rc, "%s", msg);
        } else {
            rc = wv_group_join(dl.g);
            wv_group_free(dl.g);
        }
    }
    for (int i = 0; dl.slots && i < dl.nslots; i++)
        wv_s3_object_free(&dl.slots[i].obj);
    free(dl.slots);
    if (rc == 0 && size)
        *size = dl.size;
    wv_s3_object_free(&head);
    return rc;
}

/* ---------------------------------------------------------- to a file */

typedef struct file_sink {
    const char *path;
    char tmp[4096];
    int fd;
    /* the job */
    const void *buf;
    size_t n;
    int err;    /* the download's result: finish keeps the file only on 0 */
    int result; /* finish's */
} file_sink;

static int write_job(void *arg)
{
    file_sink *f = arg;
    const char *p = f->buf;
    size_t left = f->n;
    while (left) {
        ssize_t w = write(f->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

static int file_write(void *arg, const void *buf, size_t n)
{
    file_sink *f = arg;
    f->buf = buf;
    f->n = n;
    int rc = wv_offload(write_job, f);
    if (rc < 0)
        return wv_fail(rc, "%s: %s", f->tmp, wv_strerror(rc));
    return 0;
}

/* The process's umask, without changing it (umask(2) cannot be read
 * without being set, and setting it races with other threads). */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return mask;
    char line[128];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (mode_t)strtoul(line + 6, NULL, 8);
            break;
        }
    fclose(f);
    return mask;
}

static int make_temp_job(void *arg)
{
    file_sink *f = arg;
    f->fd = mkstemp(f->tmp);
    if (f->fd < 0)
        return -errno;
    struct stat st;
    mode_t mode = stat(f->path, &st) == 0 ? st.st_mode & 07777 : 0666 & ~current_umask();
    fchmod(f->fd, mode);
    return 0;
}

static int finish_job(void *arg)
{
    file_sink *f = arg;
    int rc = 0;
    if (f->err == 0 && fsync(f->fd) < 0)
        rc = -errno;
    if (close(f->fd) < 0 && rc == 0 && f->err == 0)
        rc = -errno;
    f->fd = -1;
    if (f->err == 0 && rc == 0 && rename(f->tmp, f->path) < 0)
        rc = -errno;
    if (f->err != 0 || rc != 0)
        unlink(f->tmp);
    f->result = rc;
    return rc;
}

int wv_s3_get_file(wv_s3 *s3, const char *bucket, const char *key, const char *path)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("GET", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3 || !path || !*path)
        return wv_fail(-EINVAL, "%s: no client or no path", what);
    file_sink f = {.path = path, .fd = -1};
    const char *slash = strrchr(path, '/');
    int len = slash ? snprintf(f.tmp, sizeof f.tmp, "%.*s/.%s.weave-XXXXXX", (int)(slash - path),
                               path, slash + 1)
                    : snprintf(f.tmp, sizeof f.tmp, ".%s.weave-XXXXXX", path);
    if (len < 0 || (size_t)len >= sizeof f.tmp)
        return wv_fail(-ENAMETOOLONG, "%s: the path is too long", what);
    rc = wv_offload(make_temp_job, &f);
    if (rc < 0) {
        if (f.fd >= 0) {
            close(f.fd);
            unlink(f.tmp);
        }
        return wv_fail(rc, "%s: cannot make a temporary file beside %s: %s", what, path,
                       wv_strerror(rc));
    }
    rc = wv_s3_download(s3, bucket, key, &(wv_s3_sink){file_write, &f}, NULL);
    char msg[MSG_MAX];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    f.err = rc;
    int done = wv_offload(finish_job, &f);
    if (f.fd >= 0) {
        /* the job was dropped (this fiber was cancelled or is past its
         * deadline): give the file up here, which costs no wait */
        f.err = f.err ? f.err : done;
        finish_job(&f);
    } else {
        done = f.result; /* it ran, even if the wait was cut short */
    }
    if (rc < 0)
        return wv_fail(rc, "%s", msg);
    if (done < 0)
        return wv_fail(done, "%s: cannot finish %s: %s", what, path, wv_strerror(done));
    return 0;
}
