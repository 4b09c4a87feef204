#!/bin/sh
# Usage: bench_security.sh MLXD
# `mlxd bench comm` with --cluster-token and mutual TLS (a CA and a node certificate made here by openssl):
# the group forms over TLS with the token, and the report says so. Then a rank given the wrong token is refused
# at rendezvous and the launch fails with a message naming the token.
set -e
mlxd="$1"
dir=$(mktemp -d /tmp/mlxd-bench-tls-XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=node -keyout node.key -out node.csr 2>/dev/null
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out node.pem \
  2>/dev/null
# Relative paths: the launcher hands the ranks absolute ones.
"$mlxd" bench comm -n 2 --max-mb 1 --max-allreduce-mb 1 --latency-iters 10 --cluster-token "t-$$" \
  --tls-cert node.pem --tls-key node.key --tls-ca ca.pem > report.json
grep -q '"tls": "mutual tls"' report.json
grep -q '"cluster_token": true' report.json
grep -q '"world": 2' report.json
echo "bench over mutual TLS with a cluster token: ok"
# Rank 1 presents another token than rank 0 expects.
if "$mlxd" launch -n 2 --cluster-token right -- sh -c \
  'if [ "$MLXD_RANK" = 1 ]; then MLXD_CLUSTER_TOKEN=wrong; fi; exec "$0" bench comm --max-mb 1 --max-allreduce-mb 1' \
  "$mlxd" > wrong.txt 2>&1; then
  echo "a rank with the wrong token joined"; exit 1
fi
grep -q "missing or wrong cluster token" wrong.txt || { cat wrong.txt; exit 1; }
echo "a rank with the wrong token is refused: ok"
