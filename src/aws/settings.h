/*
 * The settings every AWS client reads the same way: the endpoint (scheme
 * and Host), the region, the credentials and TLS, from options first and
 * then the environment (AWS_REGION, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Internal, shared by src/s3
 * and src/kinesis like src/aws/sigv4.h.
 *
 * Every function takes `who`, the client's name for its messages ("S3",
 * "Kinesis"), and returns 0 or -EINVAL / -ENOMEM with wv_errmsg set.
 */
#ifndef WEAVE_AWS_SETTINGS_H
#define WEAVE_AWS_SETTINGS_H

#include <stdbool.h>

#pragma GCC visibility push(hidden)

/* A client's settings, read once and never written again. Zero it
 * first; free it with aws_settings_free. */
typedef struct aws_settings {
    char *scheme; /* "http" or "https" */
    char *host;   /* the Host header's value: "h", "h:9000", "[::1]:9000" */
    char *region;
    char *access_key, *secret_key, *session_token; /* NULL: unsigned (anonymous) */
    char *ca_file;                                 /* NULL: the system's CAs */
    bool insecure;                                 /* do not verify the server (tests) */
} aws_settings;

/* A variable of the environment, NULL when unset or empty. */
const char *aws_env(const char *name);

/* The region: `given`, else $AWS_REGION, else $AWS_DEFAULT_REGION, else
 * "us-east-1"; letters, digits, '-' and '_', 1 to 64 of them. */
int aws_region(aws_settings *s, const char *given, const char *who);

/* scheme and host of an endpoint URL without a path, query or
 * credentials. */
int aws_endpoint(aws_settings *s, const char *endpoint, const char *who);

/* The key id, secret and session token: the three from the options when
 * id is set, else from the environment. `hint` ends the message when
 * there are none (" (or anonymous for public buckets)", or ""). */
int aws_credentials(aws_settings *s, const char *id, const char *secret, const char *token,
                    const char *who, const char *hint);

/* The CAs to trust (copied; NULL: the system's) and whether to verify. */
int aws_tls(aws_settings *s, const char *ca_file, bool insecure, const char *who);

/* Free what s holds, the secret's bytes wiped first so that it does not
 * outlive the client in freed memory; s is zeroed. */
void aws_settings_free(aws_settings *s);

#pragma GCC visibility pop

#endif
