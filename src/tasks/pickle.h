/*
 * src/tasks/pickle.h: Python's pickle, for the plain types JSON has, sans-I/O
 * and private (the RQ producer on it is rq.c, include/weave/rq.h). Bytes in,
 * JSON text out, and back; nothing here touches a socket.
 *
 * Writing: JSON values become the bytes CPython 3.11's pickle.dumps(obj,
 * protocol=5) writes for obj = json.loads(text), which is what RQ's default
 * serializer does (pickle.HIGHEST_PROTOCOL): null None, true/false True and
 * False, integers int (BININT1, BININT2, BININT, else LONG1), other numbers
 * float (BINFLOAT), strings str (SHORT_BINUNICODE, BINUNICODE, BINUNICODE8),
 * arrays list, objects dict; containers and strings memoized (MEMOIZE), in
 * FRAMEs of 64 KiB as CPython cuts them. Byte for byte, including the
 * memo references (BINGET) CPython writes for a str object seen twice: the
 * empty string and one-character strings below U+0100 are singletons in
 * CPython, and json.loads makes equal object keys of one document one
 * object (tests/unit/pickle_fixtures/ holds what Python wrote). An
 * integer beyond int64 (written without '.', 'e' or 'E', as json.loads
 * tells them apart) and a float beyond double's range (1e400, which
 * json.loads reads as inf) are refused with -ERANGE.
 *
 * Reading: the subset of pickle those types need (any protocol 2 to 5
 * writes them with), and the lists, tuples and dicts CPython builds from
 * it, back to JSON text: tuples become arrays, ints must fit int64, dict
 * keys must be str, floats must be finite, strings valid UTF-8 (U+0000
 * is written \u0000, which is JSON but which wv_json_parse refuses). A
 * pickle of
 * anything else (bytes, a set, a class instance such as datetime, a
 * reference to a global, a big int) is refused with -ENOTSUP and wv_errmsg()
 * naming it ("pickle: datetime.datetime is not a plain type"); bytes that
 * are not a pickle (an unknown opcode, a truncated argument, a stack that
 * does not add up, nothing after a STOP-less end) are -EBADMSG. Input is
 * bounded (PICKLE_MAX_BYTES), nesting too (PICKLE_MAX_DEPTH, which also
 * stops a list that contains itself), and the JSON written
 * (PICKLE_MAX_JSON: memo references can share one list many times).
 *
 * Errors are negative errno values, as everywhere in weave.
 */
#ifndef WEAVE_TASKS_PICKLE_H
#define WEAVE_TASKS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/json.h"

#pragma GCC visibility push(hidden)

#define PICKLE_MAX_BYTES (16u << 20) /* a pickle read, at most */
#define PICKLE_MAX_JSON  (16u << 20) /* the JSON text written from one, at most */
#define PICKLE_MAX_DEPTH WV_JSON_MAX_DEPTH

/* Append to *out the pickle of v (one JSON value). 0; -ERANGE (an integer
 * beyond int64, a float beyond double), -EINVAL (v NULL, or nested deeper than
 * PICKLE_MAX_DEPTH), -ENOMEM. On failure *out holds a partial pickle. */
int pickle_dumps(const wv_json_val *v, wv_buf *out);

/*
 * Append to *out the pickle of RQ's job tuple, (func_name, None, args,
 * kwargs), as RQ's Job.data pickles it for q.enqueue(func_name, *args,
 * **kwargs): args (a JSON array; NULL = none) becomes a tuple, kwargs (a
 * JSON object; NULL = none) a dict. Errors as pickle_dumps, and -EINVAL for
 * args that is not an array or kwargs not an object.
 */
int pickle_dumps_call(const char *func_name, const wv_json_val *args, const wv_json_val *kwargs,
                      wv_buf *out);

/* Append to *json the JSON text of the pickle data[0..n). 0; -ENOTSUP (a
 * value beyond the plain types), -EBADMSG (not a pickle), -EMSGSIZE (n over
 * PICKLE_MAX_BYTES, or the JSON over PICKLE_MAX_JSON), -ENOMEM; wv_errmsg()
 * says what. On failure *json holds a partial text. */
int pickle_loads_json(const void *data, size_t n, wv_buf *json);

#pragma GCC visibility pop

#endif
