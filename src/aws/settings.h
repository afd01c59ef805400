/*
 * The settings every AWS client reads the same way: the endpoint (scheme
 * and Host), the region and the credentials, from options first and then
 * the environment (AWS_REGION, AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Internal, shared by src/s3
 * and src/kinesis like src/aws/sigv4.h.
 *
 * Every function takes `who`, the client's name for its messages ("S3",
 * "Kinesis"), and returns 0 or -EINVAL / -ENOMEM with wv_errmsg set. The
 * strings made are malloc'ed; free a secret with aws_secret_free.
 */
#ifndef WEAVE_AWS_SETTINGS_H
#define WEAVE_AWS_SETTINGS_H

#pragma GCC visibility push(hidden)

/* A variable of the environment, NULL when unset or empty. */
const char *aws_env(const char *name);

/* The region: `given`, else $AWS_REGION, else $AWS_DEFAULT_REGION, else
 * "us-east-1"; letters, digits, '-' and '_', 1 to 64 of them. */
int aws_region(const char *given, const char *who, char **out);

/* scheme ("http" or "https") and the Host header's value ("h", "h:9000",
 * "[::1]:9000") of an endpoint URL without a path, query or credentials. */
int aws_endpoint(const char *endpoint, const char *who, char **scheme, char **host);

/* The key id, secret and session token: the three from the options when
 * id is set, else from the environment. `hint` ends the message when
 * there are none (" (or anonymous for public buckets)", or ""). */
int aws_credentials(const char *id, const char *secret, const char *token, const char *who,
                    const char *hint, char **id_out, char **secret_out, char **token_out);

/* Free a secret, its bytes wiped first so it does not outlive its owner
 * in freed memory. NULL is ignored. */
void aws_secret_free(char *secret);

#pragma GCC visibility pop

#endif
