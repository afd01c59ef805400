/*
 * GET /api/sections: every section of the chapter, which weave file ports
 * it and whether it is live in this build, so the page can show the
 * chapter's map as the integrations land.
 */
#include "chapter13.h"

typedef struct section {
    const char *id, *title, *routes, *file;
    bool live; /* false: planned, not built yet */
} section;

static const section chapter[] = {
    {"13.2.1", "FastAPI async route", "GET /async-endpoint", "examples/chapter13/s13_2_1_fastapi.c",
     true},
    {"13.2.2", "Django async view", "GET /async-view/", "examples/chapter13/s13_2_2_django.c",
     true},
    {"13.3.1", "PostgreSQL with asyncpg", "GET /users", "examples/chapter13/s13_3_databases.c",
     true},
    {"13.3.2", "SQLAlchemy and Tortoise ORM",
     "GET /users/{id}, PUT /users/{id}, DELETE /users/{id}", "examples/chapter13/s13_3_databases.c",
     true},
    {"13.4.1", "Message queue with aio-pika (the bus: AMQP_URL, or in-process)",
     "POST /messages, GET /messages, GET /messages/stream, POST /messages/consumer",
     "examples/chapter13/s13_4_messaging.c", true},
    {"13.4.2", "Kafka with aiokafka (KAFKA_BROKERS: the same /messages routes)", "",
     "examples/chapter13/s13_4_messaging.c", true},
    {"13.5.1", "WebSockets", "WS /ws, WS /ws/echo, WS /ws/chat",
     "examples/chapter13/s13_5_1_websockets.c", true},
    {"13.5.2", "React frontend", "GET /", "examples/chapter13/s13_5_2_frontend.c", true},
    {"13.6.1", "REST microservices (httpx)", "GET /data, POST /echo, GET /proxy/data",
     "examples/chapter13/s13_6_1_rest.c", true},
    {"13.6.2", "gRPC (MyService.SayHello on --grpc-port)",
     "gRPC /MyService/SayHello, GET /grpc/hello", "examples/chapter13/s13_6_2_grpc.c", true},
    {"13.7.1", "AWS S3 with aiobotocore",
     "POST /files, GET /files, GET /files/{name}, DELETE /files/{name}",
     "examples/chapter13/s13_7_cloud.c", true},
    {"13.7.2", "Google Cloud Storage (S3_BUCKET=gs://...: the same /files routes)", "",
     "examples/chapter13/s13_7_cloud.c", true},
    {"13.8.1", "Celery tasks (TASKS_URL, or a queue in the service's database)",
     "POST /tasks/add, GET /tasks/{id}", "examples/chapter13/s13_8_tasks.c", true},
    {"13.8.2", "Celery on RabbitMQ (TASKS_URL=amqp://...: the same /tasks routes)", "",
     "examples/chapter13/s13_8_tasks.c", true},
    {"13.9.1", "Redis cache", "PUT /cache/{key}, GET /cache/{key}, DELETE /cache/{key}",
     "examples/chapter13/s13_9_caching.c", true},
    {"13.9.2", "Memcached (MEMCACHED_SERVERS: the same /cache routes)", "",
     "examples/chapter13/s13_9_caching.c", true},
    {"13.10", "Event streams: Kinesis (KINESIS_STREAM), or the bus", "POST /events, GET /events",
     "examples/chapter13/s13_10_events.c", true},
    {"13.10.1", "Kafka event streams (KAFKA_BROKERS: the same /events routes)", "",
     "examples/chapter13/s13_10_events.c", true},
    {"13.11.1", "Prometheus metrics", "GET /hello, GET /metrics",
     "examples/chapter13/s13_11_1_prometheus.c", true},
    {"13.11.2", "Grafana dashboard", "", "deploy/grafana/weave-dashboard.json", true},
    {"13.12.1", "CI/CD to Docker and Kubernetes (GitHub Actions)", "", "Dockerfile", true},
    {"13.12.2", "CI/CD with GitLab CI", "", ".gitlab-ci.yml", true},
    {"13.13",
     "Best practices: a bearer JWT, an API key, rate limits, load shedding, documented APIs "
     "(OpenAPI 3.1, Swagger UI in s13_13_docs.c)",
     "GET /me, GET /admin/config, GET /openapi.json, GET /docs",
     "examples/chapter13/s13_13_practices.c", true},
};

static int list(wv_req *req, wv_res *res)
{
    (void)req;
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "sections");
    wv_json_array_begin(j);
    for (size_t i = 0; i < sizeof chapter / sizeof chapter[0]; i++) {
        const section *s = &chapter[i];
        wv_json_object_begin(j);
        wv_json_key(j, "id");
        wv_json_string(j, s->id);
        wv_json_key(j, "title");
        wv_json_string(j, s->title);
        wv_json_key(j, "status");
        wv_json_string(j, s->live ? "live" : "planned");
        wv_json_key(j, "routes");
        wv_json_array_begin(j);
        const char *p = s->routes;
        while (*p) {
            size_t n = 0;
            while (p[n] && !(p[n] == ',' && p[n + 1] == ' '))
                n++;
            wv_json_stringn(j, p, n);
            p += n;
            if (*p)
                p += 2;
        }
        wv_json_array_end(j);
        if (s->file[0]) {
            wv_json_key(j, "file");
            wv_json_string(j, s->file);
        }
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

void sections(wv_app *app)
{
    wv_get(app, "/api/sections", list);
}
