/*
 * Files: wv_res_file (conditional requests, ranges, sendfile) and
 * wv_static (a directory mounted under a prefix, with path checks).
 *
 * Validators follow nginx: ETag "<mtime hex>-<size hex>", Last-Modified from
 * the mtime. Small files are read into the response batch (one writev for
 * head and body); larger ones go out with sendfile after the head.
 */
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/http_internal.h"

enum { SMALL_FILE = 16 * 1024, SEND_PIECE = 64 * 1024 };

static const struct {
    const char *ext, *type;
} mime[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"zst", "application/zstd"},
};

const char *wv_mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot && dot[1])
        for (size_t i = 0; i < sizeof mime / sizeof mime[0]; i++)
            if (strcasecmp(dot + 1, mime[i].ext) == 0)
                return mime[i].type;
    return "application/octet-stream";
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static time_t parse_http_date(wv_str v)
{
    char buf[64];
    if (!v.p || v.n >= sizeof buf)
        return (time_t)-1;
    memcpy(buf, v.p, v.n);
    buf[v.n] = '\0';
    struct tm tm = {0};
    const char *end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return (time_t)-1;
    return timegm(&tm);
}

/* Does an If-None-Match list hold our tag ("*", weak forms compare equal)? */
static bool etag_matches(wv_str list, const char *etag)
{
    size_t en = strlen(etag);
    const char *p = list.p, *end = list.p + list.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p < end && *p == '*')
            return true;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *q = p;
        while (q < end && *q != ',')
            q++;
        const char *t = q;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == en && memcmp(p, etag, en) == 0)
            return true;
        p = q;
    }
    return false;
}

/* One "bytes=a-b" range against size: 1 = range set, 0 = no usable Range
 * header (send everything), -1 = unsatisfiable. */
static int parse_range(wv_str v, int64_t size, int64_t *from, int64_t *len)
{
    if (!v.p || v.n < 7 || strncasecmp(v.p, "bytes=", 6) != 0)
        return 0;
    const char *p = v.p + 6, *end = v.p + v.n;
    if (memchr(p, ',', (size_t)(end - p)))
        return 0; /* several ranges: answer with the whole file */
    int64_t a = -1, b = -1;
    if (p < end && *p >= '0' && *p <= '9') {
        a = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (a > (INT64_MAX - 9) / 10)
                return 0;
            a = a * 10 + (*p++ - '0');
        }
    }
    if (p >= end || *p++ != '-')
        return 0;
    if (p < end) {
        b = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (b > (INT64_MAX - 9) / 10)
                return 0;
            b = b * 10 + (*p++ - '0');
        }
        if (p != end)
            return 0;
    }
    if (a < 0 && b < 0)
        return 0;
    if (a < 0) { /* suffix: the last b bytes */
        if (b == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *len = size - *from;
        return size > 0 ? 1 : -1;
    }
    if (b >= 0 && b < a)
        return 0;
    if (a >= size)
        return -1;
    int64_t last = b < 0 || b >= size ? size - 1 : b;
    *from = a;
    *len = last - a + 1;
    return 1;
}

static int res_file_fd(wv_res *res, int fd, const char *path);

/* A large file over HTTP/2: read a piece at a time into the response,
 * each write waiting while the peer's window is shut. Closes fd. */
static int send_file_exchange(wv_res *res, int status, const char *type, int fd, int64_t from,
                              int64_t len, const char *path)
{
    int rc = wv_res_begin_length(res, status, type, len);
    char *buf = rc == 0 ? malloc(SEND_PIECE) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    while (rc == 0 && len > 0) {
        size_t want = len < SEND_PIECE ? (size_t)len : SEND_PIECE;
        ssize_t got = pread(fd, buf, want, from);
        if (got <= 0) {
            rc = wv_fail(-EIO, "reading %s failed", path);
            break;
        }
        rc = wv_res_write(res, buf, (size_t)got);
        from += got;
        len -= got;
    }
    free(buf);
    close(fd);
    return rc < 0 ? rc : wv_res_end(res);
}

int wv_res_file(wv_res *res, const char *path)
{
    if (res->started)
        return -EALREADY;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int err = errno == ENOENT || errno == ENOTDIR ? -ENOENT : -EACCES;
        return wv_fail(err, err == -ENOENT ? "Not Found" : "Forbidden");
    }
    return res_file_fd(res, fd, path);
}

/* Serve an open file (closed here); `path` names it for its type. */
static int res_file_fd(wv_res *res, int fd, const char *path)
{
    wv_req *req = res->req;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return wv_fail(-EACCES, "Forbidden");
    }
    char etag[64], lastmod[40];
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    http_date(st.st_mtime, lastmod, sizeof lastmod);
    wv_res_header(res, "ETag", etag);
    wv_res_header(res, "Last-Modified", lastmod);
    wv_res_header(res, "Accept-Ranges", "bytes");

    wv_str inm = wv_req_header(req, "If-None-Match");
    bool not_modified = false;
    if (inm.p) {
        not_modified = etag_matches(inm, etag);
    } else {
        time_t since = parse_http_date(wv_req_header(req, "If-Modified-Since"));
        not_modified = since != (time_t)-1 && st.st_mtime <= since;
    }
    if (not_modified) {
        close(fd);
        return wv_res_send(res, 304, NULL, NULL, 0);
    }

    int64_t size = st.st_size, from = 0, len = size;
    int status = 200;
    wv_str range = wv_req_header(req, "Range");
    wv_str if_range = wv_req_header(req, "If-Range");
    if (range.p && (!if_range.p || wv_str_eq_cstr(if_range, etag))) {
        int r = parse_range(range, size, &from, &len);
        if (r < 0) {
            char cr[48];
            snprintf(cr, sizeof cr, "bytes */%lld", (long long)size);
            wv_res_header(res, "Content-Range", cr);
            close(fd);
            return wv_res_send(res, 416, NULL, NULL, 0);
        }
        if (r > 0) {
            char cr[80];
            snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)from,
                     (long long)(from + len - 1), (long long)size);
            wv_res_header(res, "Content-Range", cr);
            status = 206;
        }
    }

    const char *type = wv_mime_type(path);
    if (res->head_only) {
        close(fd); /* HEAD: the head GET would send, with its length */
        return wv_res_send(res, status, type, NULL, (size_t)len);
    }
    if (len <= SMALL_FILE) {
        char *buf = wv_req_alloc(req, (size_t)len);
        ssize_t got = buf ? pread(fd, buf, (size_t)len, from) : -1;
        close(fd);
        if (got != len)
            return wv_fail(-EIO, "reading %s failed", path);
        return wv_res_send(res, status, type, buf, (size_t)len);
    }
    if (res->x) /* HTTP/2: through the stream's flow control, not sendfile */
        return send_file_exchange(res, status, type, fd, from, len, path);
    int rc = res_send_file_head(res, status, type, len);
    if (rc == 0) {
        off_t off = from;
        ssize_t sent = wv_stream_sendfile(res->c->s, fd, &off, (size_t)len);
        if (sent < 0 || sent != len) {
            res->c->dead = true; /* the length promised cannot be kept */
            rc = sent < 0 ? (int)sent : -EIO;
        }
        res->body_bytes = sent > 0 ? sent : 0;
    }
    close(fd);
    return rc;
}

/* -------------------------------------------------------------- mounts */

/* A mounted directory: its real path, and an O_PATH descriptor that
 * openat2(RESOLVE_BENEATH) resolves request paths under in one call. */
typedef struct mount {
    char *dir;
    int dirfd;
} mount;

static void mount_free(void *p)
{
    mount *m = p;
    if (m->dirfd >= 0)
        close(m->dirfd);
    free(m->dir);
    free(m);
}

static _Atomic int have_openat2 = 1;

/* Open rel under the mount, never outside it (no "..", no symlink out):
 * an fd, or -ENOENT, or -ENOSYS when the kernel has no openat2. */
static int open_beneath(int dirfd, const char *rel)
{
#ifdef SYS_openat2
    if (atomic_load_explicit(&have_openat2, memory_order_relaxed)) {
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, dirfd, *rel ? rel : ".", &how, sizeof how);
        if (fd >= 0)
            return fd;
        if (errno != ENOSYS)
            return -ENOENT; /* missing, or outside the mount (EXDEV) */
        atomic_store(&have_openat2, 0);
    }
#endif
    return -ENOSYS;
}

/* Before Linux 5.6: resolve with realpath and check the prefix. */
static int open_checked(wv_req *req, const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *path = wv_req_alloc(req, n);
    if (!path)
        return -ENOMEM;
    snprintf(path, n, "%s/%s", dir, rel);
    char real[PATH_MAX];
    if (!realpath(path, real))
        return -ENOENT;
    size_t dl = strlen(dir);
    if (strncmp(real, dir, dl) != 0 || (real[dl] != '/' && real[dl] != '\0'))
        return -ENOENT;
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    return fd < 0 ? -ENOENT : fd;
}

static int static_handler(wv_req *req, wv_res *res)
{
    const mount *m = wv_req_data(req);
    wv_str rel;
    int rc = wv_req_param(req, "path", &rel);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    if (rc == -ENOENT)
        rel = (wv_str){"", 0};
    /* NUL cannot be in a file name; refuse ".." outright (openat2 would
     * too, but the fallback resolves it) */
    if (memchr(rel.p ? rel.p : "", '\0', rel.n))
        return wv_fail(-ENOENT, "Not Found");
    for (size_t i = 0; i < rel.n; i++) {
        bool seg_start = i == 0 || rel.p[i - 1] == '/';
        if (seg_start && i + 1 < rel.n && rel.p[i] == '.' && rel.p[i + 1] == '.' &&
            (i + 2 == rel.n || rel.p[i + 2] == '/'))
            return wv_fail(-ENOENT, "Not Found");
    }
    char *name = wv_req_alloc(req, rel.n + 16);
    if (!name)
        return -ENOMEM;
    memcpy(name, rel.p, rel.n);
    name[rel.n] = '\0';
    int fd = open_beneath(m->dirfd, name);
    if (fd == -ENOSYS)
        fd = open_checked(req, m->dir, name);
    if (fd < 0)
        return wv_fail(-ENOENT, "Not Found");
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* a directory: its index.html */
        int idx = openat(fd, "index.html", O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        close(fd);
        if (idx < 0)
            return wv_fail(-ENOENT, "Not Found");
        fd = idx;
        snprintf(name + rel.n, 16, "%sindex.html", rel.n && name[rel.n - 1] != '/' ? "/" : "");
    }
    return res_file_fd(res, fd, name);
}

int wv_static(wv_router *r, const char *prefix, const char *dir)
{
    if (!r || !prefix || prefix[0] != '/' || !dir)
        return -EINVAL;
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return wv_fail(-ENOENT, "static directory %s: %s", dir, wv_strerror(-errno));
    mount *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->dir = strdup(real);
    m->dirfd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!m->dir || m->dirfd < 0) {
        int err = m->dirfd < 0 ? -errno : -ENOMEM;
        mount_free(m);
        return wv_fail(err, "static directory %s: %s", dir, wv_strerror(err));
    }
    if (router_keep(r->root, m, mount_free) < 0)
        return -ENOMEM;
    size_t pl = strlen(prefix);
    char pattern[512];
    if (pl + 16 > sizeof pattern)
        return -EINVAL;
    snprintf(pattern, sizeof pattern, "%s%s{path...}", prefix, prefix[pl - 1] == '/' ? "" : "/");
    int rc = wv_route_with(r, "GET", pattern, static_handler, m);
    if (rc == 0 && pl > 1) {
        /* the prefix itself ("/static") serves the index too */
        char bare[512];
        snprintf(bare, sizeof bare, "%.*s", (int)(prefix[pl - 1] == '/' ? pl - 1 : pl), prefix);
        wv_route_with(r, "GET", bare, static_handler, m);
    }
    return rc;
}
