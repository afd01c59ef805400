// The AWS SDK for JavaScript v3 (@aws-sdk/client-s3, @aws-sdk/lib-storage,
// pinned in package.json) as a command, for tests/integration/test_s3_node.py,
// which checks weave's S3 client against it on the same s3rver. Settings come
// from the environment, as for tests/integration/s3_peer.c: S3_ENDPOINT,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
//
//   node s3_peer.js put BUCKET KEY FILE [TYPE [NAME=VALUE...]]  PutObject, with metadata
//   node s3_peer.js upload BUCKET KEY FILE PART_MIB             lib-storage's Upload of the
//                                                               file as a stream, in parts
//   node s3_peer.js get BUCKET KEY FILE                         GetObject into FILE; prints
//                                                               {size, type, etag, metadata}
//                                                               as JSON
//
// Exit 0 on success; else 1 with the SDK's error on stderr and its name
// ("NoSuchKey") on stdout.
//
// The client keeps the SDK's defaults but for what a local server needs:
// the bucket in the path, the endpoint. Its default checksums stay on
// (requestChecksumCalculation WHEN_SUPPORTED: a CRC32 with every PutObject
// and UploadPart), which s3rver ignores when the CRC32 comes as a header,
// as it does for a Buffer body. A PutObject whose body is a stream would
// go out aws-chunked with the CRC32 in a trailer, and s3rver 3.7.1 would
// store the chunk framing as the object's bytes; so `put` sends a Buffer,
// and streams go through lib-storage's Upload, which sends each part as a
// Buffer.
'use strict';
const fs = require('fs');
const { S3Client, PutObjectCommand, GetObjectCommand } = require('@aws-sdk/client-s3');
const { Upload } = require('@aws-sdk/lib-storage');

function client() {
  return new S3Client({
    endpoint: process.env.S3_ENDPOINT,
    region: process.env.AWS_REGION || 'us-east-1',
    forcePathStyle: true,
  });
}

async function put(s3, bucket, key, file, type, pairs) {
  const metadata = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq < 0) throw new Error('metadata is NAME=VALUE');
    metadata[p.slice(0, eq)] = p.slice(eq + 1);
  }
  await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: key, Body: fs.readFileSync(file), ContentType: type, Metadata: metadata,
  }));
}

async function upload(s3, bucket, key, file, partMib) {
  const up = new Upload({
    client: s3,
    params: { Bucket: bucket, Key: key, Body: fs.createReadStream(file) },
    partSize: Number(partMib) * 1024 * 1024,
    leavePartsOnError: false,
  });
  await up.done();
}

async function get(s3, bucket, key, file) {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const bytes = await r.Body.transformToByteArray();
  fs.writeFileSync(file, bytes);
  console.log(JSON.stringify({
    size: r.ContentLength, type: r.ContentType || '', etag: r.ETag || '', metadata: r.Metadata || {},
  }));
}

async function main(argv) {
  const [cmd, bucket, key, file, ...rest] = argv;
  const s3 = client();
  if (cmd === 'put' && file) await put(s3, bucket, key, file, rest[0], rest.slice(1));
  else if (cmd === 'upload' && rest.length === 1) await upload(s3, bucket, key, file, rest[0]);
  else if (cmd === 'get' && file && rest.length === 0) await get(s3, bucket, key, file);
  else throw new Error('usage: see the top of tests/integration/node/s3_peer.js');
}

main(process.argv.slice(2)).catch((e) => {
  console.error('s3_peer.js: ' + (e.stack || e));
  console.log(e.name || 'Error');
  process.exit(1);
});
