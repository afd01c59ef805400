/*
 * wv_url (src/net/url.c): parsing, as a table of URLs and the parts each
 * must give (every default port, IPv6 literals, percent-decoding, userinfo
 * with and without a password, queries, fragments, Unix sockets, schemes in
 * upper case) and a table of texts that must fail with -EINVAL; the query
 * parameters; wv_url_decode; the default ports and TLS schemes; and
 * wv_url_redact (each kind of secret, text that is no URL, cuts at every
 * cap with a canary byte after it), including that a failed parse's error
 * message never shows the password. All pure functions: no runtime.
 */
#include "harness.h"

#include <string.h>

#include <weave/net.h>

/* ------------------------------------------------------------ parse table */

typedef struct parse_case {
    const char *in;
    const char *scheme, *user, *password, *host;
    int port;
    bool port_given;
    const char *path, *query, *fragment;
} parse_case;

static const parse_case parse_cases[] = {
    /* every default port of the header, and one scheme we do not know */
    {"http://example.com", "http", NULL, NULL, "example.com", 80, false, "", NULL, NULL},
    {"ws://h/chat", "ws", NULL, NULL, "h", 80, false, "/chat", NULL, NULL},
    {"https://h/", "https", NULL, NULL, "h", 443, false, "/", NULL, NULL},
    {"wss://h", "wss", NULL, NULL, "h", 443, false, "", NULL, NULL},
    {"postgres://h/app", "postgres", NULL, NULL, "h", 5432, false, "/app", NULL, NULL},
    {"postgresql://h", "postgresql", NULL, NULL, "h", 5432, false, "", NULL, NULL},
    {"redis://h/0", "redis", NULL, NULL, "h", 6379, false, "/0", NULL, NULL},
    {"rediss://h", "rediss", NULL, NULL, "h", 6379, false, "", NULL, NULL},
    {"memcached://h", "memcached", NULL, NULL, "h", 11211, false, "", NULL, NULL},
    {"amqp://h", "amqp", NULL, NULL, "h", 5672, false, "", NULL, NULL},
    {"amqps://h", "amqps", NULL, NULL, "h", 5671, false, "", NULL, NULL},
    {"kafka://h", "kafka", NULL, NULL, "h", 9092, false, "", NULL, NULL},
    {"grpc://h", "grpc", NULL, NULL, "h", 50051, false, "", NULL, NULL},
    {"mysql://h", "mysql", NULL, NULL, "h", 3306, false, "", NULL, NULL},
    {"nats://h", "nats", NULL, NULL, "h", 4222, false, "", NULL, NULL},
    {"mqtt://h", "mqtt", NULL, NULL, "h", 1883, false, "", NULL, NULL},
    {"gopher://h", "gopher", NULL, NULL, "h", 0, false, "", NULL, NULL},
    /* ports as written */
    {"http://h:8080/x", "http", NULL, NULL, "h", 8080, true, "/x", NULL, NULL},
    {"http://h:1", "http", NULL, NULL, "h", 1, true, "", NULL, NULL},
    {"http://h:65535", "http", NULL, NULL, "h", 65535, true, "", NULL, NULL},
    {"http://h:00080", "http", NULL, NULL, "h", 80, true, "", NULL, NULL},
    {"http://h:/x", "http", NULL, NULL, "h", 80, false, "/x", NULL, NULL},
    {"gopher://h:70", "gopher", NULL, NULL, "h", 70, true, "", NULL, NULL},
    /* IPv6 literals */
    {"http://[::1]/x", "http", NULL, NULL, "::1", 80, false, "/x", NULL, NULL},
    {"redis://[2001:db8::1]:6380", "redis", NULL, NULL, "2001:db8::1", 6380, true, "", NULL, NULL},
    {"http://[::ffff:192.0.2.1]:/", "http", NULL, NULL, "::ffff:192.0.2.1", 80, false, "/", NULL,
     NULL},
    {"postgres://u:p@[fe80::1]:5433/db", "postgres", "u", "p", "fe80::1", 5433, true, "/db", NULL,
     NULL},
    /* userinfo */
    {"postgres://app:s3cret@db:5433/app", "postgres", "app", "s3cret", "db", 5433, true, "/app",
     NULL, NULL},
    {"postgres://us%40er:p%3Ass%2Fw%25@db%2Dhost/app", "postgres", "us@er", "p:ss/w%", "db-host",
     5432, false, "/app", NULL, NULL},
    {"postgres://app:@db/x", "postgres", "app", "", "db", 5432, false, "/x", NULL, NULL},
    {"postgres://app@db/x", "postgres", "app", NULL, "db", 5432, false, "/x", NULL, NULL},
    {"redis://:pw@h", "redis", "", "pw", "h", 6379, false, "", NULL, NULL},
    {"postgres://app:p@ss@db/x", "postgres", "app", "p@ss", "db", 5432, false, "/x", NULL, NULL},
    {"postgres://app:a:b@db", "postgres", "app", "a:b", "db", 5432, false, "", NULL, NULL},
    {"http://u:p@/x", "http", "u", "p", "", 80, false, "/x", NULL, NULL},
    /* query and fragment, kept raw */
    {"postgres://db/x?sslmode=require&options=a=b&bare&application_name=my%20app", "postgres", NULL,
     NULL, "db", 5432, false, "/x", "sslmode=require&options=a=b&bare&application_name=my%20app",
     NULL},
    {"http://h/p?q=1#frag", "http", NULL, NULL, "h", 80, false, "/p", "q=1", "frag"},
    {"http://h#f?x", "http", NULL, NULL, "h", 80, false, "", NULL, "f?x"},
    {"http://h?", "http", NULL, NULL, "h", 80, false, "", "", NULL},
    {"http://h/#", "http", NULL, NULL, "h", 80, false, "/", NULL, ""},
    {"http://h/a%20b?c%26d#e%00f", "http", NULL, NULL, "h", 80, false, "/a%20b", "c%26d", "e%00f"},
    {"http://h/a@b:c", "http", NULL, NULL, "h", 80, false, "/a@b:c", NULL, NULL},
    /* Unix sockets */
    {"unix:///run/x.sock", "unix", NULL, NULL, "", 0, false, "/run/x.sock", NULL, NULL},
    {"unix:/run/x.sock", "unix", NULL, NULL, "", 0, false, "/run/x.sock", NULL, NULL},
    {"redis://%2Frun%2Fredis.sock/0", "redis", NULL, NULL, "/run/redis.sock", 6379, false, "/0",
     NULL, NULL},
    {"postgres://u:p@%2Fvar%2Frun%2Fpostgresql/app", "postgres", "u", "p", "/var/run/postgresql",
     5432, false, "/app", NULL, NULL},
    /* schemes: lower-cased, RFC 3986's characters */
    {"HTTPS://Example.COM:8443/A", "https", NULL, NULL, "Example.COM", 8443, true, "/A", NULL,
     NULL},
    {"Redis+Sentinel.v-2://h", "redis+sentinel.v-2", NULL, NULL, "h", 0, false, "", NULL, NULL},
    {"mailto:a@b", "mailto", NULL, NULL, "", 0, false, "a@b", NULL, NULL},
    {"x:", "x", NULL, NULL, "", 0, false, "", NULL, NULL},
    {"x://", "x", NULL, NULL, "", 0, false, "", NULL, NULL},
    /* bytes above ASCII pass */
    {"http://h/caf\xc3\xa9", "http", NULL, NULL, "h", 80, false, "/caf\xc3\xa9", NULL, NULL},
};

/* A part of row `in` as parsed, against the table's (NULL: absent). */
static void expect_part(const char *in, const char *part, const char *got, const char *want)
{
    bool same = (!got && !want) || (got && want && strcmp(got, want) == 0);
    if (!same)
        fail_msg("\"%s\": %s is \"%s\", want \"%s\"", in, part, got ? got : "(null)",
                 want ? want : "(null)");
}

static void test_url_parse_table_gives_every_part(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
        const parse_case *c = &parse_cases[i];
        wv_url u;
        int rc = wv_url_parse(c->in, &u);
        if (rc != 0)
            fail_msg("\"%s\": rc %d (%s)", c->in, rc, wv_errmsg());
        expect_part(c->in, "scheme", u.scheme, c->scheme);
        expect_part(c->in, "user", u.user, c->user);
        expect_part(c->in, "password", u.password, c->password);
        expect_part(c->in, "host", u.host, c->host);
        expect_part(c->in, "path", u.path, c->path);
        expect_part(c->in, "query", u.query, c->query);
        expect_part(c->in, "fragment", u.fragment, c->fragment);
        if (u.port != c->port || u.port_given != c->port_given)
            fail_msg("\"%s\": port %d (given %d), want %d (given %d)", c->in, u.port, u.port_given,
                     c->port, c->port_given);
        wv_url_free(&u);
    }
}

/* ------------------------------------------------------------ failures */

static const char *const bad_urls[] = {
    "",
    "example.com",
    "localhost",
    "://x",
    "1http://x",
    "ht_tp://x",
    "redis://h:99999",
    "redis://h:65536",
    "redis://h:0",
    "redis://h:123456789012345678901234567890",
    "redis://h:12a",
    "redis://h:-1",
    "redis://h:1:2",
    "redis://u:%4@h",
    "redis://h/%4",
    "redis://h/%",
    "redis://h/%zz",
    "redis://h?a=%g1",
    "redis://h#%",
    "redis://%00@h",
    "redis://u:%00@h",
    "redis://%00h",
    "redis://h?a=%00",
    "redis://h%0A",
    "redis://u:p%7F@h",
    "redis://[::1",
    "redis://[::1]x",
    "redis://[::1]]:1",
    "redis://[not-hex]",
    "redis://[]",
    "redis://[fe80::1%25eth0]",
    "redis://h]:1",
    "redis://h[:1",
    "http://h/\x01",
    "http://h/a\tb",
    "http://h\x7f",
    "http://h/\r\n",
    "http://h/a b",
    "postgres://u:my secret@h/x",
};

static void test_url_parse_rejects_malformed_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_urls); i++) {
        wv_url u;
        memset(&u, 0xA5, sizeof u);
        int rc = wv_url_parse(bad_urls[i], &u);
        if (rc != -EINVAL)
            fail_msg("\"%s\": rc %d, want -EINVAL", bad_urls[i], rc);
        if (strncmp(wv_errmsg(), "bad URL \"", 9) != 0)
            fail_msg("\"%s\": errmsg \"%s\"", bad_urls[i], wv_errmsg());
        /* zeroed, so freeing it is harmless */
        assert_null(u.mem_);
        assert_null(u.scheme);
        assert_int_equal(u.nparams, 0);
        wv_url_free(&u);
    }
}

static void test_url_parse_rejects_null_arguments(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse(NULL, &u), -EINVAL);
    assert_string_equal(wv_errmsg(), "no URL");
    assert_int_equal(wv_url_parse("http://h", NULL), -EINVAL);
}

static void test_url_parse_rejects_port_above_65535(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse("http://h:65536/", &u), -EINVAL);
    assert_string_equal(wv_errmsg(), "bad URL \"http://h:65536/\": the port is not a number in "
                                     "1-65535");
    assert_int_equal(wv_url_parse("http://h:65535/", &u), 0);
    assert_int_equal(u.port, 65535);
    wv_url_free(&u);
}

static void test_url_parse_error_never_shows_the_password(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse("postgres://u:hunter2@h:99999/x", &u), -EINVAL);
    assert_string_equal(wv_errmsg(),
                        "bad URL \"postgres://u:***@h:99999/x\": the port is not a number in "
                        "1-65535");
    assert_int_equal(wv_url_parse("postgres://u:my secret@h/x", &u), -EINVAL);
    assert_string_equal(wv_errmsg(), "bad URL \"postgres://u:***@h/x\": a space at byte 15");
    assert_int_equal(wv_url_parse("redis://u:hunter2@h/%zz?token=abc", &u), -EINVAL);
    assert_string_equal(wv_errmsg(), "bad URL \"redis://u:***@h/%zz?token=***\": a '%' not "
                                     "followed by two hex digits in the path");
}

static void test_url_parse_error_names_the_problem(void **state)
{
    (void)state;
    static const struct {
        const char *in, *msg;
    } cases[] = {
        {"example.com", "bad URL \"example.com\": no scheme (scheme://...)"},
        {"redis://h:12a", "bad URL \"redis://h:12a\": the port is not a number in 1-65535"},
        {"redis://[::1", "bad URL \"redis://[::1\": an unclosed '[' in the host"},
        {"redis://[::g]", "bad URL \"redis://[::g]\": not an IPv6 address between '[' and ']'"},
        {"redis://u:%4@h", "bad URL \"redis://u:***@h\": a '%' not followed by two hex digits "
                           "in the password"},
        {"redis://%00@h", "bad URL \"redis://%00@h\": an encoded NUL (%00) in the user"},
        {"redis://h%0A", "bad URL \"redis://h%0A\": an encoded control character in the host"},
        /* the control character itself is shown as '?': the message stays one line */
        {"http://h/\n", "bad URL \"http://h/?\": a control character at byte 9"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_url u;
        assert_int_equal(wv_url_parse(cases[i].in, &u), -EINVAL);
        assert_string_equal(wv_errmsg(), cases[i].msg);
    }
}

static void test_url_parse_error_message_cuts_a_long_url(void **state)
{
    (void)state;
    char in[600];
    memcpy(in, "redis://u:hunter2@h:99999/", 26);
    memset(in + 26, 'a', sizeof in - 27);
    in[sizeof in - 1] = '\0';
    wv_url u;
    assert_int_equal(wv_url_parse(in, &u), -EINVAL);
    const char *msg = wv_errmsg();
    assert_null(strstr(msg, "hunter2"));
    /* the reason survives the cut */
    const char *why = "\": the port is not a number in 1-65535";
    assert_string_equal(msg + strlen(msg) - strlen(why), why);
}

/* ------------------------------------------------------------ parameters */

static void test_url_param_get_finds_decoded_values(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse("x://h/?a=1&b=x%3Dy&bare&a=2&c=&&e=a=b&plus=a+b&na%6De=v&"
                                  "=anon&sp=%20",
                                  &u),
                     0);
    assert_int_equal(u.nparams, 10);
    assert_string_equal(wv_url_param_get(&u, "a"), "1");
    assert_string_equal(wv_url_param_get(&u, "b"), "x=y");
    assert_string_equal(wv_url_param_get(&u, "bare"), "");
    assert_string_equal(wv_url_param_get(&u, "c"), "");
    assert_string_equal(wv_url_param_get(&u, "e"), "a=b");
    assert_string_equal(wv_url_param_get(&u, "plus"), "a+b");
    assert_string_equal(wv_url_param_get(&u, "name"), "v");
    assert_string_equal(wv_url_param_get(&u, ""), "anon");
    assert_string_equal(wv_url_param_get(&u, "sp"), " ");
    assert_null(wv_url_param_get(&u, "missing"));
    assert_null(wv_url_param_get(&u, "A"));
    assert_null(wv_url_param_get(&u, NULL));
    assert_null(wv_url_param_get(NULL, "a"));
    /* in order, duplicates kept */
    assert_string_equal(u.params[0].name, "a");
    assert_string_equal(u.params[3].name, "a");
    assert_string_equal(u.params[3].value, "2");
    assert_string_equal(u.query, "a=1&b=x%3Dy&bare&a=2&c=&&e=a=b&plus=a+b&na%6De=v&=anon&sp=%20");
    wv_url_free(&u);
}

static void test_url_param_get_without_a_query_finds_nothing(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse("x://h/p#a=1", &u), 0);
    assert_int_equal(u.nparams, 0);
    assert_null(u.params);
    assert_null(wv_url_param_get(&u, "a"));
    wv_url_free(&u);
    assert_int_equal(wv_url_parse("x://h/p?&&", &u), 0);
    assert_int_equal(u.nparams, 0);
    assert_string_equal(u.query, "&&");
    wv_url_free(&u);
}

static void test_url_free_zeroes_and_tolerates_null(void **state)
{
    (void)state;
    wv_url u;
    assert_int_equal(wv_url_parse("postgres://u:p@h/x?a=b", &u), 0);
    wv_url_free(&u);
    assert_null(u.mem_);
    assert_null(u.scheme);
    assert_null(u.params);
    wv_url_free(&u); /* zeroed: harmless twice */
    wv_url_free(NULL);
    wv_url zero = {0};
    wv_url_free(&zero);
}

/* ------------------------------------------------------------ schemes */

static void test_url_default_port_knows_the_schemes_case_insensitively(void **state)
{
    (void)state;
    assert_int_equal(wv_url_default_port("http"), 80);
    assert_int_equal(wv_url_default_port("HTTP"), 80);
    assert_int_equal(wv_url_default_port("Wss"), 443);
    assert_int_equal(wv_url_default_port("PostgreSQL"), 5432);
    assert_int_equal(wv_url_default_port("amqps"), 5671);
    assert_int_equal(wv_url_default_port("grpcs"), 50051);
    assert_int_equal(wv_url_default_port("mqtts"), 8883);
    assert_int_equal(wv_url_default_port("memcacheds"), 11211);
    assert_int_equal(wv_url_default_port("unix"), 0);
    assert_int_equal(wv_url_default_port("htt"), 0);
    assert_int_equal(wv_url_default_port("https2"), 0);
    assert_int_equal(wv_url_default_port(""), 0);
    assert_int_equal(wv_url_default_port(NULL), 0);
}

static void test_url_scheme_is_tls_for_the_tls_schemes_only(void **state)
{
    (void)state;
    static const char *const tls[] = {"https", "wss",   "rediss",     "amqps",
                                      "grpcs", "mqtts", "memcacheds", "HTTPS"};
    static const char *const plain[] = {"http", "ws",        "redis",    "amqp", "grpc",
                                        "mqtt", "memcached", "postgres", "",     "httpss"};
    for (size_t i = 0; i < ARRAY_LEN(tls); i++)
        if (!wv_url_scheme_is_tls(tls[i]))
            fail_msg("%s should mean TLS", tls[i]);
    for (size_t i = 0; i < ARRAY_LEN(plain); i++)
        if (wv_url_scheme_is_tls(plain[i]))
            fail_msg("%s should not mean TLS", plain[i]);
    assert_false(wv_url_scheme_is_tls(NULL));
}

/* ------------------------------------------------------------ decoding */

static void test_url_decode_decodes_escapes_and_keeps_plus(void **state)
{
    (void)state;
    char out[32];
    assert_int_equal(wv_url_decode("a%20b+c%4a%4A", 13, out, sizeof out), 7);
    assert_string_equal(out, "a b+cJJ");
    assert_int_equal(wv_url_decode("", 0, out, sizeof out), 0);
    assert_string_equal(out, "");
    /* n bytes only: what follows is not read */
    assert_int_equal(wv_url_decode("abc%41", 3, out, sizeof out), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(wv_url_decode("%C3%A9", 6, out, sizeof out), 2);
    assert_string_equal(out, "\xc3\xa9");
}

static void test_url_decode_rejects_bad_escapes_and_nul(void **state)
{
    (void)state;
    static const char *const bad[] = {"%", "%4", "ab%", "%zz", "%4g", "%g4", "x%00y", "%%41"};
    char out[16];
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        memset(out, 'x', sizeof out);
        if (wv_url_decode(bad[i], strlen(bad[i]), out, sizeof out) != -EINVAL)
            fail_msg("\"%s\" should be -EINVAL", bad[i]);
        assert_string_equal(out, "");
    }
    /* an escape cut by n is bad even if the text goes on */
    assert_int_equal(wv_url_decode("ab%41", 4, out, sizeof out), -EINVAL);
    /* a NUL byte among the n bytes */
    assert_int_equal(wv_url_decode("a\0b", 3, out, sizeof out), -EINVAL);
    /* -EINVAL wins over -ENOSPC */
    assert_int_equal(wv_url_decode("abcdef%zz", 9, out, 2), -EINVAL);
}

static void test_url_decode_needs_room_for_the_nul(void **state)
{
    (void)state;
    char out[8];
    memset(out, 'x', sizeof out);
    assert_int_equal(wv_url_decode("a%20b", 5, out, 3), -ENOSPC);
    assert_int_equal(out[0], '\0');
    assert_int_equal(out[3], 'x');
    assert_int_equal(wv_url_decode("a%20b", 5, out, 4), 3);
    assert_string_equal(out, "a b");
    out[0] = 'x';
    assert_int_equal(wv_url_decode("ab", 2, out, 0), -ENOSPC);
    assert_int_equal(out[0], 'x');
    assert_int_equal(wv_url_decode("", 0, out, 1), 0);
    assert_string_equal(out, "");
}

/* ------------------------------------------------------------ redaction */

static const struct {
    const char *in, *out;
} redact_cases[] = {
    /* the userinfo's password; the user stays */
    {"postgres://app:hunter2@db/x", "postgres://app:***@db/x"},
    {"redis://:hunter2@h:6379/0", "redis://:***@h:6379/0"},
    {"postgres://app:p@ss@db/x", "postgres://app:***@db/x"},
    {"postgres://app:a:b@[::1]:5432", "postgres://app:***@[::1]:5432"},
    {"postgres://app:p%40ss@db", "postgres://app:***@db"},
    /* nothing to hide: a user alone, an empty password, no userinfo */
    {"postgres://app@db/x", "postgres://app@db/x"},
    {"postgres://app:@db/x", "postgres://app:@db/x"},
    {"http://h:8080/a@b:c", "http://h:8080/a@b:c"},
    {"unix:///run/x.sock", "unix:///run/x.sock"},
    /* query parameters whose names sound secret */
    {"postgres://h/x?sslmode=require&sslpassword=abc&api_key=k1#f",
     "postgres://h/x?sslmode=require&sslpassword=***&api_key=***#f"},
    {"http://h/?Access_Token=t0k&x=1", "http://h/?Access_Token=***&x=1"},
    {"http://h/?client_SECRET=s;x=1", "http://h/?client_SECRET=***;x=1"},
    {"http://h/?p%61ssword=x&q=1", "http://h/?p%61ssword=***&q=1"},
    {"http://h/?data[token]=x", "http://h/?data[token]=***"},
    {"http://h/?token=&x=1", "http://h/?token=&x=1"},
    {"x://u:pw@h/?key=v", "x://u:***@h/?key=***"},
    {"http://h/?monkey=banana&keyspace=ks", "http://h/?monkey=***&keyspace=***"},
    /* libpq's key=value words */
    {"host=db port=5432 password=secret dbname=app", "host=db port=5432 password=*** dbname=app"},
    {"host=db password='my s\\'ecret' user=x", "host=db password=*** user=x"},
    {"password = secret host=x", "password = *** host=x"},
    {"sslkey=/etc/k.pem sslpassword=\"a b\"", "sslkey=*** sslpassword=***"},
    {"PASSWORD=abc#def&ghi", "PASSWORD=***"},
    {"password='unterminated quote", "password=***"},
    {"password=", "password="},
    /* URLs inside a message */
    {"cannot connect to postgres://u:pw@h:5432/x: Connection refused",
     "cannot connect to postgres://u:***@h:5432/x: Connection refused"},
    {"a://u:p@h/ and b://v:q@i/", "a://u:***@h/ and b://v:***@i/"},
    /* text with no secrets, URL or not, is copied unchanged */
    {"", ""},
    {"hello world", "hello world"},
    {"a=b c=d", "a=b c=d"},
    {"http://example.com/path?x=1&y=2#top", "http://example.com/path?x=1&y=2#top"},
    {"://", "://"},
    {"key", "key"},
    {"=value", "=value"},
    {"100% sure: 50%", "100% sure: 50%"},
};

static void test_url_redact_hides_every_kind_of_secret(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(redact_cases); i++) {
        char out[256];
        size_t n = wv_url_redact(redact_cases[i].in, out, sizeof out);
        if (strcmp(out, redact_cases[i].out) != 0)
            fail_msg("\"%s\" -> \"%s\", want \"%s\"", redact_cases[i].in, out, redact_cases[i].out);
        assert_int_equal(n, strlen(out));
    }
}

static void test_url_redact_of_null_text_is_empty(void **state)
{
    (void)state;
    char out[4] = "xyz";
    assert_int_equal(wv_url_redact(NULL, out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(wv_url_redact("abc", NULL, 0), 0);
}

static void test_url_redact_cuts_at_cap_and_never_overflows(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "postgres://app:hunter2@db:5432/app?sslpassword=abc&x=1",
        "host=db password='a b' user=x",
        "plain text",
    };
    for (size_t t = 0; t < ARRAY_LEN(texts); t++) {
        char full[256];
        size_t full_n = wv_url_redact(texts[t], full, sizeof full);
        for (size_t cap = 0; cap <= full_n + 2; cap++) {
            char out[260];
            memset(out, '#', sizeof out);
            size_t n = wv_url_redact(texts[t], out, cap);
            assert_int_equal(out[cap], '#'); /* the canary after cap */
            if (cap == 0) {
                assert_int_equal(n, 0);
                assert_int_equal(out[0], '#');
                continue;
            }
            size_t want = full_n < cap - 1 ? full_n : cap - 1;
            assert_int_equal(n, want);
            assert_int_equal(out[n], '\0');
            assert_memory_equal(out, full, n); /* a prefix of the whole */
        }
    }
    /* the small caps, spelled out */
    char out[8];
    memset(out, '#', sizeof out);
    assert_int_equal(wv_url_redact("x://u:pw@h", out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(out[1], '#');
    assert_int_equal(wv_url_redact("x://u:pw@h", out, 5), 4);
    assert_string_equal(out, "x://");
    assert_int_equal(out[5], '#');
    assert_int_equal(wv_url_redact("x://u:pw@h", out, 8), 7);
    assert_string_equal(out, "x://u:*");
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse_table_gives_every_part),
        cmocka_unit_test(test_url_parse_rejects_malformed_urls),
        cmocka_unit_test(test_url_parse_rejects_null_arguments),
        cmocka_unit_test(test_url_parse_rejects_port_above_65535),
        cmocka_unit_test(test_url_parse_error_never_shows_the_password),
        cmocka_unit_test(test_url_parse_error_names_the_problem),
        cmocka_unit_test(test_url_parse_error_message_cuts_a_long_url),
        cmocka_unit_test(test_url_param_get_finds_decoded_values),
        cmocka_unit_test(test_url_param_get_without_a_query_finds_nothing),
        cmocka_unit_test(test_url_free_zeroes_and_tolerates_null),
        cmocka_unit_test(test_url_default_port_knows_the_schemes_case_insensitively),
        cmocka_unit_test(test_url_scheme_is_tls_for_the_tls_schemes_only),
        cmocka_unit_test(test_url_decode_decodes_escapes_and_keeps_plus),
        cmocka_unit_test(test_url_decode_rejects_bad_escapes_and_nul),
        cmocka_unit_test(test_url_decode_needs_room_for_the_nul),
        cmocka_unit_test(test_url_redact_hides_every_kind_of_secret),
        cmocka_unit_test(test_url_redact_of_null_text_is_empty),
        cmocka_unit_test(test_url_redact_cuts_at_cap_and_never_overflows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
