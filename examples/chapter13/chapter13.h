/*
 * The book chapter's service in C: one file per section, each the twin of
 * the Python example it ports, wired together by main.c.
 */
#ifndef CHAPTER13_H
#define CHAPTER13_H

#include <weave/app.h>
#include <weave/schema.h>

/* The simulated work of the chapter's handlers (asyncio.sleep(1)):
 * --async-delay-ms / ASYNC_DELAY_MS, 1000 by default, 0 allowed. */
extern int64_t async_delay_ms;

/* The service's database when DATABASE_URL is not set (the users, and the
 * embedded task queue). */
#define DEFAULT_DATABASE_URL "sqlite://chapter13.db"

void s13_2_1_fastapi(wv_app *app);         /* GET /async-endpoint */
void s13_2_2_django(wv_app *app);          /* GET /async-view/ */
void s13_3_databases_options(wv_app *app); /* --database-url */
void s13_3_databases(wv_app *app); /* GET, POST /users; GET, PUT, DELETE /users/{id} (cached) */
void s13_4_messaging_options(wv_app *app);    /* --bus-url */
void s13_4_messaging(wv_app *app);            /* POST, GET /messages, GET /messages/stream */
void s13_5_1_websockets_options(wv_app *app); /* its options, declared first */
void s13_5_1_websockets(wv_app *app);         /* WS /ws, /ws/echo, /ws/chat */
void s13_5_2_frontend(wv_app *app);           /* the React page at /, CORS */
void s13_6_1_rest_options(wv_app *app);       /* --downstream-url, --downstream-timeout-ms */
void s13_6_1_rest(wv_app *app);               /* GET /data, POST /echo, GET /proxy/data */
void s13_6_2_grpc_options(wv_app *app);       /* --grpc-port, --grpc-target */
void s13_6_2_grpc(wv_app *app);             /* MyService.SayHello on --grpc-port; GET /grpc/hello */
void s13_6_2_grpc_free(void);               /* after the app has run: its gRPC channel */
void s13_7_cloud_options(wv_app *app);      /* --s3-bucket, --files-dir, --files-max-bytes */
void s13_7_cloud(wv_app *app);              /* POST, GET /files; GET, DELETE /files/{name} */
void s13_8_tasks_options(wv_app *app);      /* --tasks-url, --tasks-backend, --worker */
void s13_8_tasks(wv_app *app);              /* POST /tasks/add, GET /tasks/{id}; the worker */
int s13_8_worker_main(void);                /* `chapter13 worker`: the workers alone */
void s13_9_caching_options(wv_app *app);    /* --cache-url, --redis-url, --memcached-servers */
void s13_9_caching(wv_app *app);            /* PUT, GET, DELETE /cache/{key} */
void s13_10_events_options(wv_app *app);    /* --events-stream */
void s13_10_events(wv_app *app);            /* POST, GET /events (Kinesis, or the bus) */
void s13_11_1_prometheus(wv_app *app);      /* GET /hello */
void s13_13_practices_options(wv_app *app); /* JWT_*, API_KEYS*, RATE_LIMIT, RATE_BURST */
void s13_13_practices(
    wv_app *app);              /* GET /me (bearer JWT), GET /admin/config (API key), rate limits */
void sections(wv_app *app);    /* GET /api/sections */
void s13_13_docs(wv_app *app); /* GET /openapi.json, GET /docs: after every other route */

/*
 * Every input a route reads is declared (include/weave/schema.h) and read
 * through these (validation.c), so that anything invalid is FastAPI's 422
 * with every error at once:
 *
 *     wv_schema_errors errs = {0};
 *     int rc = input_path(req, &id_param, &id, &errs);
 *     rc = input_fold(rc, wv_schema_decode_body(req, &user_in_model, &in, &errs));
 *     if ((rc = input_end(res, rc, &errs)) != 0)
 *         return rc < 0 ? rc : 0;          // 1: the 422 was sent
 *
 * input_path / input_query: the path or query parameter f->name validated
 * as f (wv_schema_param, loc ["path", name] or ["query", name]) into out.
 * input_fold: one more input's result folded into rc: an error that is not
 * the input's (out of memory, a body that could not be read) wins over
 * "invalid" (-EINVAL; -EBADMSG, a body that is not JSON, counts as
 * invalid), which wins over 0. input_end frees errs and returns 0 (every
 * input valid), 1 once the 422 was sent, or rc's error.
 */
int input_path(wv_req *req, const wv_db_field *f, void *out, wv_schema_errors *errs);
int input_query(wv_req *req, const wv_db_field *f, void *out, wv_schema_errors *errs);
int input_fold(int rc, int next);
int input_end(wv_res *res, int rc, wv_schema_errors *errs);

/* FastAPI's 422 with one error the schema cannot state (a raw body's):
 * loc, input and ctx are JSON texts (input and ctx may be NULL). Returns
 * what sending does. */
int unprocessable(wv_res *res, const char *type, const char *msg, const char *loc,
                  const char *input, const char *ctx);

/* {"detail": why} with this status (validation.c), for what a status
 * alone cannot say: a downstream's or a store's failure (502). */
int detail_error(wv_res *res, int status, const char *why);

#endif
