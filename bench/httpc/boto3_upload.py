"""boto3's upload_fileobj with its default TransferConfig (8 MiB parts
above 8 MiB, 10 threads, botocore's default pool of 10 connections): the
anchor of s3.put_multipart (bench/run_httpc.sh). It uploads the same
bytes as bench/bench_s3.c from the same kind of source, a file-like
object whose read() copies them out of one 1 MiB block held in memory
(no file, not seekable, so s3transfer reads it part by part as weave's
source callback is read).

  boto3_upload.py BUCKET KEY MIB ETAG [SERVER_PID]

Settings from the environment, as for weave's side: S3_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION; the bucket in the
path. After the upload the object is checked (HEAD: its size, and ETAG)
and deleted. Prints the lines bench_s3 prints: seconds= (upload_fileobj
alone), client_cpu= and server_cpu= (% of one core during it), rss_mib=
(this process's peak, VmHWM, at the end) and last value= (MB/s, MB = 10^6
bytes). A failed upload or check exits 1.
"""
import os
import resource
import sys
import time

import boto3
import botocore.config

CHUNK = 1 << 20
HEADER = 8
# bench_s3.c's BLOCK: byte j is ((j * 2654435761) mod 2^32) >> 13, low 8 bits
BLOCK = bytes((((j * 2654435761) & 0xFFFFFFFF) >> 13) & 0xFF for j in range(CHUNK))
TAIL = BLOCK[HEADER:]


class Generated:
    """The stream of bench_s3.c: MiB k is BLOCK with its first 8 bytes
    replaced by k, little-endian."""

    def __init__(self, size):
        self.pos = 0
        self.end = size

    def readable(self):
        return True

    def seekable(self):
        return False

    def read(self, n=-1):
        if n is None or n < 0 or n > self.end - self.pos:
            n = self.end - self.pos
        start, stop = self.pos, self.pos + n
        if start % CHUNK == 0 and stop % CHUNK == 0:  # whole MiBs: one copy
            out = b"".join(piece for k in range(start // CHUNK, stop // CHUNK)
                           for piece in (k.to_bytes(HEADER, "little"), TAIL))
        else:
            first, last = start // CHUNK, (stop + CHUNK - 1) // CHUNK
            whole = b"".join(k.to_bytes(HEADER, "little") + TAIL for k in range(first, last))
            out = whole[start - first * CHUNK:stop - first * CHUNK]
        self.pos = stop
        return out


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def server_seconds(pid):
    if not pid:
        return -1
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    bucket, key, mib, etag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    server_pid = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    size = mib * CHUNK
    s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                      region_name=os.environ.get("AWS_REGION", "us-east-1"),
                      config=botocore.config.Config(s3={"addressing_style": "path"}))
    src = Generated(size)
    t0, c0, s0 = time.monotonic(), cpu_seconds(), server_seconds(server_pid)
    s3.upload_fileobj(src, bucket, key)
    t1, c1, s1 = time.monotonic(), cpu_seconds(), server_seconds(server_pid)
    head = s3.head_object(Bucket=bucket, Key=key)
    s3.delete_object(Bucket=bucket, Key=key)
    if src.pos != size or head["ContentLength"] != size or head["ETag"] != '"%s"' % etag:
        print("boto3_upload: read %d of %d bytes; the object is %d bytes with ETag %s, not %s"
              % (src.pos, size, head["ContentLength"], head["ETag"], etag), file=sys.stderr)
        return 1
    wall = t1 - t0
    print("seconds=%.3f" % wall)
    print("client_cpu=%.0f" % (100 * (c1 - c0) / wall))
    print("server_cpu=%.0f" % (100 * (s1 - s0) / wall if s0 >= 0 else -1))
    print("rss_mib=%.1f" % (peak_rss_kib() / 1024))
    print("value=%.1f" % (size / 1e6 / wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
