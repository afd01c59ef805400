/*
 * A Kafka cluster for the tests: librdkafka's mock cluster (brokers that
 * speak the Kafka protocol on loopback, inside this process), held up for
 * clients in other processes (kcat, confluent_kafka, kafkajs, weave's own
 * peers) until stdin closes.
 *
 *     kafka_mock_cluster [BROKERS] [TOPIC:PARTITIONS]...
 *
 * prints "bootstraps=127.0.0.1:P1,127.0.0.1:P2,..." (the ports are chosen
 * by the kernel), then reads one command a line from stdin and answers
 * "ok" or "error: ...":
 *
 *     topic NAME PARTITIONS      create a topic (replication factor 1)
 *     down BROKER_ID | up BROKER_ID
 *     leader TOPIC PARTITION BROKER_ID
 *     errors API_KEY ERROR_CODE COUNT
 *                                the next COUNT requests of that API
 *                                (0 Produce, 1 Fetch, ...) fail with ERROR_CODE
 *
 * Topics a client asks for in a metadata request are created by the mock
 * on the fly.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rd_kafka_mock_cluster_t *cluster;

static const char *create_topic(const char *spec)
{
    char name[256];
    int partitions = 1;
    if (sscanf(spec, "%255[^:]:%d", name, &partitions) < 1 || partitions < 1)
        return "bad topic (NAME:PARTITIONS)";
    if (rd_kafka_mock_topic_create(cluster, name, partitions, 1) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return "the mock refused the topic";
    return NULL;
}

static const char *command(char *line)
{
    char word[32], name[256];
    int a = 0, b = 0, c = 0;
    if (sscanf(line, "%31s", word) != 1)
        return "empty command";
    if (strcmp(word, "topic") == 0) {
        if (sscanf(line, "%*s %255s %d", name, &a) != 2)
            return "usage: topic NAME PARTITIONS";
        char spec[300];
        snprintf(spec, sizeof spec, "%s:%d", name, a);
        return create_topic(spec);
    }
    if (strcmp(word, "down") == 0 || strcmp(word, "up") == 0) {
        if (sscanf(line, "%*s %d", &a) != 1)
            return "usage: down|up BROKER_ID";
        rd_kafka_resp_err_t err = word[0] == 'd' ? rd_kafka_mock_broker_set_down(cluster, a)
                                                 : rd_kafka_mock_broker_set_up(cluster, a);
        return err ? rd_kafka_err2str(err) : NULL;
    }
    if (strcmp(word, "leader") == 0) {
        if (sscanf(line, "%*s %255s %d %d", name, &a, &b) != 3)
            return "usage: leader TOPIC PARTITION BROKER_ID";
        rd_kafka_resp_err_t err = rd_kafka_mock_partition_set_leader(cluster, name, a, b);
        return err ? rd_kafka_err2str(err) : NULL;
    }
    if (strcmp(word, "errors") == 0) {
        if (sscanf(line, "%*s %d %d %d", &a, &b, &c) != 3 || c < 1)
            return "usage: errors API_KEY ERROR_CODE COUNT";
        for (int i = 0; i < c; i++)
            rd_kafka_mock_push_request_errors(cluster, (int16_t)a, 1, (rd_kafka_resp_err_t)b);
        return NULL;
    }
    return "unknown command";
}

int main(int argc, char **argv)
{
    char err[512];
    int brokers = argc > 1 ? atoi(argv[1]) : 3;
    if (brokers < 1) {
        fprintf(stderr, "usage: %s [BROKERS] [TOPIC:PARTITIONS]...\n", argv[0]);
        return 2;
    }
    /* the cluster lives in a handle's threads; this one does nothing else */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!owner) {
        fprintf(stderr, "kafka_mock_cluster: %s\n", err);
        return 1;
    }
    cluster = rd_kafka_mock_cluster_new(owner, brokers);
    if (!cluster) {
        fprintf(stderr, "kafka_mock_cluster: cannot start the mock cluster\n");
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        const char *why = create_topic(argv[i]);
        if (why) {
            fprintf(stderr, "kafka_mock_cluster: %s: %s\n", argv[i], why);
            return 1;
        }
    }
    printf("bootstraps=%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    fflush(stdout);
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        const char *why = command(line);
        if (why)
            printf("error: %s\n", why);
        else
            printf("ok\n");
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(owner);
    return 0;
}
