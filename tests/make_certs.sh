#!/usr/bin/env bash
# Make the certificates the TLS tests use, into DIR (created), with the
# openssl command line: a test CA, and ECDSA P-256 certificates it signs.
#   ca.pem ca.key               the test CA (trust it with --cacert / ca_file)
#   server.pem server.key       localhost, 127.0.0.1, ::1: valid until 2099
#   server2.pem server2.key     the same names, another key (a reload test's new certificate)
#   expired.pem expired.key     localhost, 127.0.0.1: expired in 2020
#   wronghost.pem wronghost.key example.com only
#   untrusted.pem untrusted.key localhost, 127.0.0.1: self-signed, no CA trusts it
# Usage: tests/make_certs.sh DIR. Quiet unless something fails.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

openssl req -x509 "${ec[@]}" -days 36500 -subj /CN=weave-test-ca -keyout ca.key -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
cat >ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = anything
serial = serial
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
CNF
: >index.txt
echo 01 >serial

# signed NAME CN SAN NOT_BEFORE NOT_AFTER
signed()
{
    openssl req -new "${ec[@]}" -subj "/CN=$2" -addext "subjectAltName=$3" -keyout "$1.key" \
        -out "$1.csr" 2>/dev/null
    openssl ca -config ca.cnf -batch -notext -startdate "$4" -enddate "$5" -in "$1.csr" \
        -out "$1.pem" 2>/dev/null
    rm -f "$1.csr"
}
signed server localhost DNS:localhost,IP:127.0.0.1,IP:::1 20200101000000Z 20991231000000Z
signed server2 localhost DNS:localhost,IP:127.0.0.1,IP:::1 20200101000000Z 20991231000000Z
signed expired localhost DNS:localhost,IP:127.0.0.1 20200101000000Z 20200201000000Z
signed wronghost example.com DNS:example.com 20200101000000Z 20991231000000Z
openssl req -x509 "${ec[@]}" -days 36500 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout untrusted.key -out untrusted.pem \
    2>/dev/null
rm -f ./*.old index.txt.attr serial ./0*.pem
