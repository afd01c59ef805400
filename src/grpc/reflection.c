/*
 * gRPC server reflection (grpc.reflection.v1alpha; weave/grpc.h:
 * wv_grpc_reflection): which services this process serves, and the
 * .proto files that describe them, as serialized FileDescriptorProtos.
 *
 * The files come from weave_protobuf_c's generated code: each .proto's
 * descriptor set (imports included) is registered when the program
 * starts (wv_grpc_reflection_register). Registering reads just enough of
 * each FileDescriptorProto (name, package, imports, and the names of its
 * messages, enums, services and methods) to find a file by name or by a
 * symbol it defines; the bytes themselves are sent as they are.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "reflection.pb-c.h"

typedef struct rfile {
    const uint8_t *bytes; /* the FileDescriptorProto, in the registered set */
    size_t n;
    char *name;
    char **deps, **symbols;
    int ndeps, nsymbols;
} rfile;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rfile *files;
static int nfiles, capfiles;
static char **services; /* what wv_grpc_service registered */
static int nservices, capservices;

/* ------------------------------------------------- protobuf wire format */

typedef struct span {
    const uint8_t *p, *end;
} span;

static bool varint(span *s, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && s->p < s->end; shift += 7) {
        uint8_t b = *s->p++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* The next field: its number, and for a length-delimited one its bytes.
 * 1, 0 at the end, -1 when the bytes are not protobuf. */
static int next_field(span *s, uint32_t *num, span *val)
{
    if (s->p == s->end)
        return 0;
    uint64_t key, v;
    if (!varint(s, &key))
        return -1;
    *num = (uint32_t)(key >> 3);
    *val = (span){NULL, NULL};
    switch (key & 7) {
    case 0:
        return varint(s, &v) ? 1 : -1;
    case 1:
    case 5: {
        size_t k = (key & 7) == 1 ? 8 : 4;
        if ((size_t)(s->end - s->p) < k)
            return -1;
        s->p += k;
        return 1;
    }
    case 2:
        if (!varint(s, &v) || v > (uint64_t)(s->end - s->p))
            return -1;
        *val = (span){s->p, s->p + v};
        s->p += v;
        return 1;
    default:
        return -1; /* groups: not in descriptor.proto's files */
    }
}

static char *join(const char *prefix, span name)
{
    size_t pn = strlen(prefix), nn = (size_t)(name.end - name.p);
    char *s = malloc(pn + nn + 2);
    if (!s)
        return NULL;
    memcpy(s, prefix, pn);
    size_t at = pn;
    if (pn)
        s[at++] = '.';
    memcpy(s + at, name.p, nn);
    s[at + nn] = 0;
    return s;
}

static int push(char ***list, int *n, char *s)
{
    if (!s)
        return -ENOMEM;
    char **p = realloc(*list, (size_t)(*n + 1) * sizeof *p);
    if (!p) {
        free(s);
        return -ENOMEM;
    }
    p[(*n)++] = s;
    *list = p;
    return 0;
}

/* The name field (1) of a descriptor message. */
static span name_of(span msg)
{
    uint32_t num;
    span v;
    while (next_field(&msg, &num, &v) == 1)
        if (num == 1 && v.p)
            return v;
    return (span){NULL, NULL};
}

/* A message (DescriptorProto) or a service (ServiceDescriptorProto) named
 * under prefix, with what it holds: nested messages (3) and enums (4), or
 * methods (2). */
static int add_symbols(rfile *f, const char *prefix, span msg, bool service)
{
    span name = name_of(msg);
    if (!name.p)
        return 0;
    char *full = join(prefix, name);
    if (push(&f->symbols, &f->nsymbols, full) < 0)
        return -ENOMEM;
    uint32_t num;
    span v;
    int rc = 0;
    while (rc == 0 && next_field(&msg, &num, &v) == 1) {
        if (!v.p)
            continue;
        if (service && num == 2) {
            span m = name_of(v);
            if (m.p)
                rc = push(&f->symbols, &f->nsymbols, join(full, m));
        } else if (!service && num == 3) {
            rc = add_symbols(f, full, v, false);
        } else if (!service && num == 4) {
            span e = name_of(v);
            if (e.p)
                rc = push(&f->symbols, &f->nsymbols, join(full, e));
        }
    }
    return rc;
}

static void rfile_free(rfile *f)
{
    for (int i = 0; i < f->ndeps; i++)
        free(f->deps[i]);
    for (int i = 0; i < f->nsymbols; i++)
        free(f->symbols[i]);
    free(f->deps);
    free(f->symbols);
    free(f->name);
}

static char *dup_span(span v)
{
    return join("", v);
}

/* One FileDescriptorProto: 0, or -ENOMEM / -EINVAL. */
static int read_file(rfile *f, span file)
{
    *f = (rfile){.bytes = file.p, .n = (size_t)(file.end - file.p)};
    char *package = NULL;
    span s = file, v;
    uint32_t num;
    int r;
    while ((r = next_field(&s, &num, &v)) == 1) {
        if (num == 1 && v.p && !f->name)
            f->name = dup_span(v);
        else if (num == 2 && v.p && !package)
            package = dup_span(v);
        else if (num == 3 && v.p && push(&f->deps, &f->ndeps, dup_span(v)) < 0)
            r = -1;
    }
    if (r < 0 || !f->name) {
        free(package);
        rfile_free(f);
        return -EINVAL;
    }
    const char *prefix = package ? package : "";
    int rc = 0;
    s = file;
    while (rc == 0 && next_field(&s, &num, &v) == 1) {
        if (!v.p)
            continue;
        if (num == 4 || num == 6) {
            rc = add_symbols(f, prefix, v, num == 6);
        } else if (num == 5) {
            span e = name_of(v);
            if (e.p)
                rc = push(&f->symbols, &f->nsymbols, join(prefix, e));
        }
    }
    free(package);
    if (rc < 0)
        rfile_free(f);
    return rc;
}

/* Called by weave_protobuf_c's generated code as the program starts,
 * before any runtime: a descriptor set's files, each once by name. */
void wv_grpc_reflection_register(const uint8_t *set, size_t n)
{
    span s = {set, set + n}, v;
    uint32_t num;
    pthread_mutex_lock(&lock);
    while (next_field(&s, &num, &v) == 1) {
        if (num != 1 || !v.p)
            continue;
        rfile f;
        if (read_file(&f, v) < 0)
            continue; /* not a file we can read: it is not offered */
        bool known = false;
        for (int i = 0; i < nfiles && !known; i++)
            known = !strcmp(files[i].name, f.name);
        if (known || (nfiles == capfiles &&
                      !(files = realloc(files, (size_t)(capfiles = capfiles ? capfiles * 2 : 16) *
                                                   sizeof *files)))) {
            rfile_free(&f);
            continue;
        }
        files[nfiles++] = f;
    }
    pthread_mutex_unlock(&lock);
}

int grpc_reflection_listed(const char *service)
{
    pthread_mutex_lock(&lock);
    int rc = 0;
    bool known = false;
    for (int i = 0; i < nservices && !known; i++)
        known = !strcmp(services[i], service);
    if (!known) {
        char *copy = strdup(service);
        if (!copy || (nservices == capservices &&
                      !(services = realloc(
                            services, (size_t)(capservices = capservices ? capservices * 2 : 8) *
                                          sizeof *services)))) {
            free(copy);
            rc = -ENOMEM;
        } else {
            services[nservices++] = copy;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ----------------------------------------------------------- answering */

static int find_file(const char *name)
{
    for (int i = 0; i < nfiles; i++)
        if (!strcmp(files[i].name, name))
            return i;
    return -1;
}

static int find_symbol(const char *symbol)
{
    if (*symbol == '.')
        symbol++;
    for (int i = 0; i < nfiles; i++)
        for (int k = 0; k < files[i].nsymbols; k++)
            if (!strcmp(files[i].symbols[k], symbol))
                return i;
    return -1;
}

/* File i and what it imports, each once, i first: into out (at most
 * nfiles entries), under the lock. */
static size_t closure(int i, int *order, bool *seen)
{
    size_t n = 0;
    order[n++] = i;
    seen[i] = true;
    for (size_t k = 0; k < n; k++) {
        const rfile *f = &files[order[k]];
        for (int d = 0; d < f->ndeps; d++) {
            int j = find_file(f->deps[d]);
            if (j >= 0 && !seen[j]) {
                seen[j] = true;
                order[n++] = j;
            }
        }
    }
    return n;
}

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest rrequest;

/* A response and the parts it points to, made under the lock and sent
 * after it (sending may wait for the peer; the lock is a thread's). */
typedef struct answer {
    Grpc__Reflection__V1alpha__ServerReflectionResponse resp;
    Grpc__Reflection__V1alpha__ErrorResponse err;
    Grpc__Reflection__V1alpha__FileDescriptorResponse files;
    Grpc__Reflection__V1alpha__ListServiceResponse list;
    Grpc__Reflection__V1alpha__ExtensionNumberResponse ext;
} answer;

static void set_error(answer *a, int code, const char *msg)
{
    a->err.error_code = code;
    a->err.error_message = (char *)msg;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    a->resp.error_response = &a->err;
}

/* File i and the files it imports, or NOT_FOUND naming `what`. */
static int set_files(wv_grpc_call *call, answer *a, int i, const char *what)
{
    if (i < 0) {
        set_error(a, WV_GRPC_NOT_FOUND, wv_grpc_printf(call, "%s not found", what));
        return 0;
    }
    int *order = wv_grpc_alloc(call, (size_t)nfiles * sizeof *order);
    bool *seen = wv_grpc_alloc(call, (size_t)nfiles);
    ProtobufCBinaryData *data = wv_grpc_alloc(call, (size_t)nfiles * sizeof *data);
    if (!order || !seen || !data)
        return -ENOMEM;
    memset(seen, 0, (size_t)nfiles);
    size_t n = closure(i, order, seen);
    for (size_t k = 0; k < n; k++) /* the bytes are the registered sets': static */
        data[k] = (ProtobufCBinaryData){files[order[k]].n, (uint8_t *)files[order[k]].bytes};
    a->files.n_file_descriptor_proto = n;
    a->files.file_descriptor_proto = data;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
    a->resp.file_descriptor_response = &a->files;
    return 0;
}

static int set_services(wv_grpc_call *call, answer *a)
{
    size_t n = (size_t)nservices;
    Grpc__Reflection__V1alpha__ServiceResponse *items =
        wv_grpc_alloc(call, (n ? n : 1) * sizeof *items);
    Grpc__Reflection__V1alpha__ServiceResponse **ptrs =
        wv_grpc_alloc(call, (n ? n : 1) * sizeof *ptrs);
    if (!items || !ptrs)
        return -ENOMEM;
    for (size_t k = 0; k < n; k++) {
        items[k] = (Grpc__Reflection__V1alpha__ServiceResponse)
            GRPC__REFLECTION__V1ALPHA__SERVICE_RESPONSE__INIT;
        items[k].name = services[k]; /* never freed */
        ptrs[k] = &items[k];
    }
    a->list.n_service = n;
    a->list.service = ptrs;
    a->resp.message_response_case =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
    a->resp.list_services_response = &a->list;
    return 0;
}

static int respond(wv_grpc_call *call, rrequest *req)
{
    answer a = {
        .resp = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT,
        .err = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT,
        .files = GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT,
        .list = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT,
        .ext = GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT,
    };
    a.resp.valid_host = req->host;
    a.resp.original_request = req;
    int rc = 0;
    pthread_mutex_lock(&lock);
    switch (req->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        rc = set_services(call, &a);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        rc = set_files(call, &a, find_file(req->file_by_filename), req->file_by_filename);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        rc = set_files(call, &a, find_symbol(req->file_containing_symbol),
                       req->file_containing_symbol);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (find_symbol(req->all_extension_numbers_of_type) < 0) {
            set_error(&a, WV_GRPC_NOT_FOUND, "type not found");
            break;
        }
        /* proto3 files, which is what protoc-c makes, declare no extensions */
        a.ext.base_type_name = req->all_extension_numbers_of_type;
        a.resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        a.resp.all_extension_numbers_response = &a.ext;
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        set_error(&a, WV_GRPC_NOT_FOUND, "extension not found");
        break;
    default:
        set_error(&a, WV_GRPC_INVALID_ARGUMENT, "empty reflection request");
        break;
    }
    pthread_mutex_unlock(&lock);
    return rc < 0 ? rc : wv_grpc_send(call, &a.resp.base);
}

static int reflection_info(wv_grpc_call *call)
{
    ProtobufCMessage *m;
    int rc;
    while ((rc = wv_grpc_recv(call, &m)) > 0)
        if ((rc = respond(call, (rrequest *)m)) < 0)
            break;
    return rc;
}

static const wv_grpc_method reflection_methods[] = {
    {"ServerReflectionInfo", .stream = reflection_info},
};

int wv_grpc_reflection(wv_router *r)
{
    return wv_grpc_service(r, &grpc__reflection__v1alpha__server_reflection__descriptor,
                           reflection_methods, 1, NULL);
}
