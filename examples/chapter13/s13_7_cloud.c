/*
 * §13.7 cloud storage: aiobotocore's put_object to S3 (13.7.1) and
 * google-cloud-aio's upload_file to Google Cloud Storage (13.7.2),
 *
 *     async with session.create_client('s3', region_name='us-east-1') as client:
 *         with open(filename, 'rb') as f:
 *             await client.put_object(Bucket=bucket, Key=key, Body=f)
 *
 * as a small file service whose uploads stream through to the store with
 * weave's S3 client (include/weave/s3.h):
 *
 *   POST /files?name=NAME   the request body is the file, any size up to
 *                           --files-max-bytes (413 past it), passed on to
 *                           the store as it arrives: in 5 MiB parts, two in
 *                           flight, so an upload holds about 10 MiB however
 *                           large it is. 201 {"name", "size", "location"}.
 *   GET /files              {"storage", "files": [{"name", "size",
 *                           "modified"}]}: the first 1000, by name
 *   GET /files/{name}       the file, streamed back with its length, as an
 *                           attachment (never rendered as a page of this
 *                           site: anyone may upload HTML)
 *   DELETE /files/{name}    204, or 404
 *
 * Where the files go:
 *
 *   --s3-bucket / S3_BUCKET  BUCKET or s3://BUCKET[/PREFIX]: Amazon S3, or
 *                            the S3-compatible server at S3_ENDPOINT;
 *                            gs://BUCKET[/PREFIX]: Google Cloud Storage's XML
 *                            API (S3_ENDPOINT replaces its endpoint too).
 *                            Credentials from AWS_ACCESS_KEY_ID and
 *                            AWS_SECRET_ACCESS_KEY (for GCS, an HMAC key's).
 *                            A file NAME is stored at PREFIX/NAME; PREFIX is
 *                            "uploads" by default, as in the chapter.
 *   --files-dir / FILES_DIR  without a bucket, a local directory
 *                            (chapter13-files), so `make run` needs no
 *                            server: the same routes, each file written
 *                            under a temporary name and renamed once whole,
 *                            the file work on the offload pool.
 *
 * A name is 1 to 255 bytes of UTF-8 without '/', '\', control characters
 * or a leading '.', declared once (name_param) for the query and the path:
 * FastAPI's 422 otherwise (string_too_long, string_pattern_mismatch,
 * string_unicode, missing). An upload whose client goes away, that
 * passes the limit, or that the store refuses leaves nothing behind (the
 * multipart upload is aborted, the temporary file removed). The store's
 * own failures are 502 with its reason (504 when the time runs out); a
 * download whose store fails midway is cut, so the client sees an error,
 * never a short file.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <weave/json.h>
#include <weave/s3.h>
#include <weave/schema.h>

#include "chapter13.h"

enum {
    NAME_MAX_BYTES = 255,
    LIST_MAX = 1000,
    DIR_CHUNK = 256 * 1024, /* bytes per offloaded write */
    UPLOAD_BODY_TIMEOUT_MS = 3600 * 1000,
};

typedef struct store {
    wv_s3 *s3; /* NULL: the local directory */
    char *bucket;
    char *prefix; /* "uploads/": ends with '/' or is empty */
    const char *dir;
    char where[1024]; /* for the banner and GET /files */
    int64_t max_bytes;
} store;

static store files;

void s13_7_cloud_options(wv_app *app)
{
    wv_app_option(app, "s3-bucket", "S3_BUCKET", WV_OPT_STRING, NULL,
                  "where POST /files stores files: BUCKET, s3://BUCKET[/PREFIX] (S3, or the "
                  "server at S3_ENDPOINT) or gs://BUCKET[/PREFIX] (Google Cloud Storage)");
    wv_app_option(app, "files-dir", "FILES_DIR", WV_OPT_STRING, "chapter13-files",
                  "the local directory that stores files when no bucket is given");
    wv_app_option(app, "files-max-bytes", "FILES_MAX_BYTES", WV_OPT_INT, "1073741824",
                  "the largest file POST /files takes (413 past it)");
}

/* ------------------------------------------------------------- names */

/* ?name= of POST /files and {name} of GET and DELETE /files/{name}. The
 * pattern reads the same in POSIX and ECMA-262 (the control characters
 * are in it as themselves, the backslash doubled); UTF-8 is the schema's
 * own check (string_unicode). */
static const wv_db_field name_param = {
    .name = "name",
    .type = WV_DB_TEXT,
    .size = NAME_MAX_BYTES + 1,
    .max_len = NAME_MAX_BYTES,
    .min_chars = 1,
    .pattern = "^[^./\\\\\x01-\x1f\x7f][^/\\\\\x01-\x1f\x7f]*$",
    .description = "The file's name: 1 to 255 bytes of UTF-8 without '/', '\\', control "
                   "characters or a leading '.'",
    .example = "\"report.pdf\""};

/* The file's name from the path or the query (where) into out: 0, 1 once
 * the 422 was sent, or an error. */
static int name_of(wv_req *req, wv_res *res, const char *where, char out[NAME_MAX_BYTES + 1])
{
    wv_schema_errors errs = {0};
    int rc = !strcmp(where, "path") ? input_path(req, &name_param, out, &errs)
                                    : input_query(req, &name_param, out, &errs);
    return input_end(res, rc, &errs);
}

/* The answer of POST /files */
typedef struct file_stored {
    char name[NAME_MAX_BYTES + 1];
    int64_t size;
    char location[16 + 3 * NAME_MAX_BYTES];
} file_stored;

static const wv_db_field file_stored_fields[] = {
    WV_FIELD_TEXT(file_stored, name, .description = "The file's name", .example = "\"report.pdf\""),
    WV_FIELD_INT(file_stored, size, .description = "Its size in bytes", .example = "5"),
    WV_FIELD_TEXT(file_stored, location, .description = "Where GET reads it back",
                  .example = "\"/files/report.pdf\""),
};
static const wv_db_model file_stored_model = {.size = sizeof(file_stored),
                                              .fields = file_stored_fields,
                                              .nfields = 3,
                                              .name = "FileStored",
                                              .description = "A file stored whole"};

/* The store's key for a name: malloc'ed, NULL on OOM. */
static char *key_for(const char *name)
{
    size_t a = strlen(files.prefix), b = strlen(name);
    char *k = malloc(a + b + 1);
    if (k) {
        memcpy(k, files.prefix, a);
        memcpy(k + a, name, b + 1);
    }
    return k;
}

/* The store failing is a gateway's failure (502), with its reason; what
 * the client caused or the clock ended keeps its own status. */
static int store_error(wv_res *res, int rc)
{
    if (!files.s3 || rc == -ENOENT || rc == -EMSGSIZE || rc == -ETIMEDOUT || rc == -ECANCELED ||
        rc == -ENOMEM)
        return rc;
    char why[512];
    snprintf(why, sizeof why, "the file store failed: %s", wv_errmsg());
    return detail_error(res, 502, why);
}

/* ----------------------------------------------------- the directory */

typedef struct dir_job {
    int fd;
    const char *name;
    char tmp[PATH_MAX];
    const void *data;
    size_t n;
} dir_job;

static int dir_open_tmp(void *arg)
{
    dir_job *j = arg;
    snprintf(j->tmp, sizeof j->tmp, "%s/.upload-XXXXXX", files.dir);
    j->fd = mkstemp(j->tmp);
    return j->fd < 0 ? -errno : 0;
}

static int dir_write(void *arg)
{
    dir_job *j = arg;
    const char *p = j->data;
    size_t left = j->n;
    while (left) {
        ssize_t w = write(j->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* Flush, then give the whole file its name (replacing one before it). */
static int dir_commit(void *arg)
{
    dir_job *j = arg;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", files.dir, j->name);
    if (fsync(j->fd) < 0 || rename(j->tmp, path) < 0)
        return -errno;
    return 0;
}

static int dir_upload(wv_req *req, const char *name, int64_t *size)
{
    dir_job j = {.fd = -1, .name = name};
    int rc = wv_offload(dir_open_tmp, &j);
    if (rc < 0)
        return wv_fail(rc, "cannot create a file in %s: %s", files.dir, strerror(-rc));
    char *buf = malloc(DIR_CHUNK);
    int64_t total = 0;
    rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        size_t have = 0;
        ssize_t n = 1;
        while (have < DIR_CHUNK && (n = wv_req_read(req, buf + have, DIR_CHUNK - have)) > 0)
            have += (size_t)n;
        total += (int64_t)have;
        if (n < 0)
            rc = (int)n;
        else if (total > files.max_bytes)
            rc = wv_fail(-EMSGSIZE, "the file is larger than %lld bytes",
                         (long long)files.max_bytes);
        else if (have && (j.data = buf, j.n = have, rc = wv_offload(dir_write, &j)) < 0)
            rc = wv_fail(rc, "cannot write %s: %s", name, strerror(-rc));
        else if (n == 0)
            break;
    }
    free(buf);
    if (rc == 0 && (rc = wv_offload(dir_commit, &j)) < 0)
        rc = wv_fail(rc, "cannot store %s: %s", name, strerror(-rc));
    close(j.fd);
    if (rc < 0)
        unlink(j.tmp); /* one metadata call, also when the fiber was cancelled */
    *size = total;
    return rc;
}

typedef struct dir_entry {
    char name[NAME_MAX_BYTES + 1];
    int64_t size, modified;
} dir_entry;

typedef struct dir_list {
    dir_entry *e;
    size_t n;
} dir_list;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const dir_entry *)a)->name, ((const dir_entry *)b)->name);
}

static int dir_list_files(void *arg)
{
    dir_list *l = arg;
    DIR *d = opendir(files.dir);
    if (!d)
        return -errno;
    l->e = calloc(LIST_MAX, sizeof *l->e);
    struct dirent *de;
    while (l->e && (de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' || strlen(de->d_name) > NAME_MAX_BYTES ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (l->n == LIST_MAX) {
            /* keep the first LIST_MAX by name: replace the greatest */
            qsort(l->e, l->n, sizeof *l->e, by_name);
            if (strcmp(de->d_name, l->e[l->n - 1].name) > 0)
                continue;
            l->n--;
        }
        dir_entry *e = &l->e[l->n++];
        snprintf(e->name, sizeof e->name, "%s", de->d_name);
        e->size = st.st_size;
        e->modified = st.st_mtim.tv_sec;
    }
    closedir(d);
    if (!l->e)
        return -ENOMEM;
    qsort(l->e, l->n, sizeof *l->e, by_name);
    return 0;
}

static int dir_exists(void *arg)
{
    struct stat st;
    if (stat(arg, &st) < 0)
        return -errno;
    return S_ISREG(st.st_mode) ? 0 : -ENOENT;
}

static int dir_remove(void *arg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", files.dir, (const char *)arg);
    return unlink(path) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------ S3, GCS */

typedef struct upload_src {
    wv_req *req;
    int64_t got;
    int client_err; /* what reading the request body failed with */
} upload_src;

static ssize_t read_upload(void *arg, void *buf, size_t n)
{
    upload_src *u = arg;
    ssize_t k = wv_req_read(u->req, buf, n);
    if (k < 0)
        u->client_err = (int)k;
    else if ((u->got += k) > files.max_bytes)
        k = u->client_err =
            wv_fail(-EMSGSIZE, "the file is larger than %lld bytes", (long long)files.max_bytes);
    return k;
}

static int send_part(void *arg, const void *buf, size_t n)
{
    return wv_res_write(arg, buf, n);
}

/* ------------------------------------------------------------ routes */

/* POST /files?name=NAME: client.put_object(Bucket=bucket, Key=key, Body=f) */
static int upload(wv_req *req, wv_res *res)
{
    file_stored out;
    char *name = out.name;
    int rc = name_of(req, res, "query", name);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    wv_str cl = wv_req_header(req, "Content-Length");
    if (cl.p && cl.n < 20 && strtoll(cl.p, NULL, 10) > files.max_bytes)
        return wv_fail(-EMSGSIZE, "the file is larger than %lld bytes", (long long)files.max_bytes);
    if ((rc = wv_req_body_timeout(req, UPLOAD_BODY_TIMEOUT_MS)) < 0)
        return rc;
    int64_t size = 0;
    if (files.s3) {
        char *key = key_for(name);
        if (!key)
            return -ENOMEM;
        char type[256] = "application/octet-stream";
        wv_str ct = wv_req_header(req, "Content-Type");
        if (ct.p && ct.n && ct.n < sizeof type)
            snprintf(type, sizeof type, "%.*s", (int)ct.n, ct.p);
        upload_src u = {.req = req};
        rc = wv_s3_upload(files.s3, files.bucket, key,
                          &(wv_s3_source){.read = read_upload, .arg = &u},
                          &(wv_s3_put_opts){.content_type = type});
        free(key);
        size = u.got;
        if (rc < 0)
            return u.client_err ? u.client_err : store_error(res, rc);
    } else if ((rc = dir_upload(req, name, &size)) < 0) {
        return rc;
    }
    char *location = out.location;
    size_t k = (size_t)snprintf(location, sizeof out.location, "/files/");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        k += (size_t)snprintf(location + k, sizeof out.location - k,
                              strchr("-._~", *p) || (*p < 0x80 && isalnum(*p)) ? "%c" : "%%%02X",
                              *p);
    if ((rc = wv_res_header(res, "Location", location)) < 0)
        return rc;
    out.size = size;
    wv_json *j = wv_res_json_writer(res);
    rc = wv_schema_encode(&file_stored_model, &out, j);
    return rc < 0 ? rc : wv_res_json_send(res, 201);
}

static void list_entry(wv_json *j, const char *name, int64_t size, int64_t modified)
{
    wv_json_object_begin(j);
    wv_json_key(j, "name");
    wv_json_string(j, name);
    wv_json_key(j, "size");
    wv_json_int(j, size);
    wv_json_key(j, "modified");
    wv_json_int(j, modified);
    wv_json_object_end(j);
}

/* GET /files */
static int list(wv_req *req, wv_res *res)
{
    (void)req;
    wv_s3_list_page page = {0};
    dir_list dl = {0};
    int rc;
    if (files.s3)
        rc = wv_s3_list(files.s3, files.bucket,
                        &(wv_s3_list_opts){.prefix = files.prefix, .delimiter = "/"}, &page);
    else
        rc = wv_offload(dir_list_files, &dl);
    if (rc == 0) {
        wv_json *j = wv_res_json_writer(res);
        wv_json_object_begin(j);
        wv_json_key(j, "storage");
        wv_json_string(j, files.where);
        wv_json_key(j, "files");
        wv_json_array_begin(j);
        size_t skip = strlen(files.prefix);
        for (size_t i = 0; i < page.nobjects; i++)
            if (strlen(page.objects[i].key) > skip)
                list_entry(j, page.objects[i].key + skip, page.objects[i].size,
                           page.objects[i].last_modified);
        for (size_t i = 0; i < dl.n; i++)
            list_entry(j, dl.e[i].name, dl.e[i].size, dl.e[i].modified);
        wv_json_array_end(j);
        wv_json_object_end(j);
        rc = wv_res_json_send(res, 200);
    } else if (!files.s3) {
        rc = wv_fail(rc, "cannot list %s: %s", files.dir, strerror(-rc));
    } else {
        rc = store_error(res, rc);
    }
    wv_s3_list_free(&page);
    free(dl.e);
    return rc;
}

/* Content-Disposition: attachment, with the name as RFC 6266 puts it
 * (an ASCII stand-in, and the UTF-8 name percent-encoded). */
static int attachment(wv_res *res, const char *name)
{
    char v[64 + 4 * NAME_MAX_BYTES];
    size_t k = (size_t)snprintf(v, sizeof v, "attachment; filename=\"");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        v[k++] = *p < 0x80 && *p != '"' && *p != '\\' ? (char)*p : '_';
    k += (size_t)snprintf(v + k, sizeof v - k, "\"; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        k += (size_t)snprintf(
            v + k, sizeof v - k,
            strchr("!#$&+-.^_`|~", *p) || (*p < 0x80 && isalnum(*p)) ? "%c" : "%%%02X", *p);
    int rc = wv_res_header(res, "Content-Disposition", v);
    if (rc == 0)
        rc = wv_res_header(res, "X-Content-Type-Options", "nosniff");
    return rc;
}

/* GET /files/{name}: the file, streamed from the store */
static int download(wv_req *req, wv_res *res)
{
    char name[NAME_MAX_BYTES + 1];
    int rc = name_of(req, res, "path", name);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (!files.s3) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", files.dir, name);
        if ((rc = wv_offload(dir_exists, path)) == 0 && (rc = attachment(res, name)) == 0)
            rc = wv_res_file(res, path);
        return rc == -ENOENT ? wv_fail(rc, "no file named %s", name) : rc;
    }
    char *key = key_for(name);
    if (!key)
        return -ENOMEM;
    wv_s3_object head;
    rc = wv_s3_head(files.s3, files.bucket, key, &head);
    if (rc == 0)
        rc = attachment(res, name);
    if (rc == 0 && head.etag[0])
        rc = wv_res_header(res, "ETag", head.etag);
    if (rc == 0)
        rc = wv_res_begin_length(
            res, 200, head.content_type[0] ? head.content_type : "application/octet-stream",
            head.size);
    wv_s3_object_free(&head);
    if (rc == 0 && !wv_str_eq_cstr(wv_req_method(req), "HEAD"))
        /* a failure from here on cuts the response (the head is sent) */
        rc = wv_s3_download(files.s3, files.bucket, key,
                            &(wv_s3_sink){.write = send_part, .arg = res}, NULL);
    free(key);
    if (rc == -ENOENT)
        return wv_fail(rc, "no file named %s", name);
    if (rc < 0)
        return store_error(res, rc);
    return wv_res_end(res);
}

/* DELETE /files/{name} */
static int remove_file(wv_req *req, wv_res *res)
{
    char name[NAME_MAX_BYTES + 1];
    int rc = name_of(req, res, "path", name);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (files.s3) {
        char *key = key_for(name);
        if (!key)
            return -ENOMEM;
        wv_s3_object head;
        /* S3 deletes what is not there without a word: ask first, for the 404 */
        rc = wv_s3_head(files.s3, files.bucket, key, &head);
        wv_s3_object_free(&head);
        if (rc == 0)
            rc = wv_s3_delete(files.s3, files.bucket, key);
        free(key);
    } else {
        rc = wv_offload(dir_remove, name);
    }
    if (rc == -ENOENT)
        return wv_fail(rc, "no file named %s", name);
    if (rc < 0)
        return store_error(res, rc);
    return wv_res_send(res, 204, NULL, NULL, 0);
}

/* ------------------------------------------------------------- setup */

static int open_store(void *arg)
{
    wv_app *app = arg;
    const char *bucket = wv_app_str(app, "s3-bucket");
    files.max_bytes = wv_app_int(app, "files-max-bytes");
    if (files.max_bytes <= 0)
        return wv_fail(-EINVAL, "--files-max-bytes must be positive");
    if (!bucket || !bucket[0]) {
        files.dir = wv_app_str(app, "files-dir");
        files.prefix = strdup("");
        if (!files.prefix)
            return -ENOMEM;
        if (mkdir(files.dir, 0755) < 0 && errno != EEXIST)
            return wv_fail(-errno, "--files-dir %s: %s", files.dir, strerror(errno));
        snprintf(files.where, sizeof files.where, "directory %s", files.dir);
        return wv_app_backend(app, "files", files.where);
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", strstr(bucket, "://") ? "" : "s3://", bucket);
    wv_s3_location loc;
    int rc = wv_s3_location_parse(url, &loc);
    if (rc < 0)
        return wv_fail(rc, "--s3-bucket %s: %s", bucket, wv_errmsg());
    const char *key = loc.key[0] ? loc.key : "uploads";
    size_t n = strlen(key);
    files.bucket = loc.bucket;
    files.prefix = malloc(n + 2);
    if (!files.prefix) {
        wv_s3_location_free(&loc);
        return -ENOMEM;
    }
    snprintf(files.prefix, n + 2, "%s%s", key, key[n - 1] == '/' ? "" : "/");
    loc.bucket = NULL;
    const char *endpoint = getenv("S3_ENDPOINT");
    wv_s3_opts o = {.provider = loc.provider,
                    .endpoint =
                        loc.provider == WV_S3_GCS && endpoint && endpoint[0] ? endpoint : NULL,
                    .part_size = 5u << 20,
                    .parts_in_flight = 2};
    rc = wv_s3_new(&o, &files.s3);
    snprintf(files.where, sizeof files.where, "%s://%s/%s", loc.provider == WV_S3_GCS ? "gs" : "s3",
             files.bucket, files.prefix);
    wv_s3_location_free(&loc);
    if (rc < 0)
        return wv_fail(rc, "--s3-bucket %s: %s", bucket, wv_errmsg());
    return wv_app_backend(app, "files", files.where);
}

static int close_store(void *arg)
{
    (void)arg;
    wv_s3_free(files.s3);
    free(files.bucket);
    free(files.prefix);
    files = (store){0};
    return 0;
}

void s13_7_cloud(wv_app *app)
{
    wv_app_on_start(app, open_store, app);
    wv_app_on_stop(app, close_store, NULL);
    wv_post(app, "/files", upload);
    wv_get(app, "/files", list);
    wv_get(app, "/files/{name}", download);
    wv_delete(app, "/files/{name}", remove_file);
}
