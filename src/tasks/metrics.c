/*
 * src/tasks/metrics.c: the task queues' metrics in the default registry
 * (docs/tasks.md, Metrics), named per include/weave/metrics.h's scheme.
 * The families are registered when the first client opens; a worker
 * resolves the series of each task it registers once (kept in the task's
 * registration), so counting a task is the registry's inline per-thread
 * add. Task names are labels: a bounded set in any sane application, and
 * every family is capped at TASKS_MAX_SERIES label sets besides, so a
 * producer inventing names cannot grow the registry without end.
 */
#include <pthread.h>

#include "tasks/transport.h"

/* Label sets per family: a few hundred task names in every state. */
#define TASKS_MAX_SERIES 2000

static pthread_once_t once = PTHREAD_ONCE_INIT;
static wv_metric *sent, *received, *finished, *duration, *running, *depth;

static const char *const state_names[TASKS_NSTATES] = {
    [TASKS_SUCCESS] = "SUCCESS", [TASKS_FAILURE] = "FAILURE",   [TASKS_RETRY] = "RETRY",
    [TASKS_REVOKED] = "REVOKED", [TASKS_REJECTED] = "REJECTED",
};

static void reg(wv_metric **out, wv_metric_type type, const char *name, const char *help,
                const char *labels, const char *unit)
{
    int rc = wv_metric_register(NULL,
                                &(wv_metric_opts){.type = type,
                                                  .name = name,
                                                  .help = help,
                                                  .labels = labels,
                                                  .unit = unit,
                                                  .max_series = TASKS_MAX_SERIES},
                                out);
    if (rc < 0)
        wv_warn("tasks: metric %s not registered: %s", name, wv_errmsg());
}

static void register_families(void)
{
    reg(&sent, WV_METRIC_COUNTER, "weave_tasks_sent_total",
        "Task messages this process put on a queue (sends, retries, follow-ups).", "task,queue",
        NULL);
    reg(&received, WV_METRIC_COUNTER, "weave_tasks_received_total",
        "Task messages a worker of this process took from its queue.", "task,queue", NULL);
    reg(&finished, WV_METRIC_COUNTER, "weave_tasks_finished_total",
        "Tasks a worker of this process finished, by outcome "
        "(SUCCESS, FAILURE, RETRY, REVOKED, REJECTED).",
        "task,state", NULL);
    reg(&duration, WV_METRIC_HISTOGRAM, "weave_tasks_duration_seconds",
        "Time tasks spent in their body.", "task", "seconds");
    reg(&running, WV_METRIC_GAUGE, "weave_tasks_running",
        "Tasks in their body in this process now.", "queue", NULL);
    reg(&depth, WV_METRIC_GAUGE, "weave_tasks_queue_depth",
        "Messages waiting in the broker, as a worker last sampled it.", "queue", NULL);
}

void tasks_metrics_init(void)
{
    pthread_once(&once, register_families);
}

static wv_series *series(wv_metric *f, const char *a, const char *b)
{
    wv_series *s = NULL;
    if (f)
        wv_metric_series(f, (const char *const[]){a, b}, &s);
    return s;
}

void tasks_metrics_task(tasks_task_metrics *m, const char *task, const char *queue)
{
    tasks_metrics_init();
    m->received = series(received, task, queue);
    for (int i = 0; i < TASKS_NSTATES; i++)
        m->finished[i] = series(finished, task, state_names[i]);
    m->duration = series(duration, task, NULL);
}

wv_series *tasks_metrics_sent(const char *task, const char *queue)
{
    tasks_metrics_init();
    return series(sent, task, queue);
}

wv_series *tasks_metrics_running(const char *queue)
{
    tasks_metrics_init();
    return series(running, queue, NULL);
}

wv_series *tasks_metrics_depth(const char *queue)
{
    tasks_metrics_init();
    return series(depth, queue, NULL);
}

void tasks_metrics_undecodable(const char *queue)
{
    tasks_task_metrics m;
    tasks_metrics_task(&m, TASKS_UNDECODABLE, queue);
    wv_counter_inc(m.received);
    wv_counter_inc(m.finished[TASKS_REJECTED]);
}
