#!/usr/bin/env bash
# Builds the FROM-scratch image of Containerfile offline with buildah, then runs it as a user
# would and checks it:
#   - the image's config: user 65532:65532, entrypoint/cmd, health check, exposed port;
#   - the image holds exactly the expected files (modes and owners included);
#   - the demo (examples/www through the proxy to the built-in file server) is served on the
#     container's port 8080: status, body, and the response header upstreams.yaml adds;
#   - `aralez healthcheck` inside the container exits 0 (and non-zero against a dead URL);
#   - the serving process runs as uid/gid 65532.
# The container runs in a network namespace of its own (unshare --net), as with podman/docker:
# its 0.0.0.0:8080 and 127.0.0.1:3000 are not on the host's network, and the checks reach them
# from inside that namespace (nsenter). Images live in a private vfs store under
# target/container/storage; the image is also saved as target/container/aralez-image.tar
# (docker-archive: `podman load -i` / `docker load -i`).
# Usage: scripts/container-test.sh [--build-only]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_ONLY=0
[ "${1:-}" = "--build-only" ] && BUILD_ONLY=1

fail() { echo "container-test: FAIL: $*" >&2; exit 1; }
step() { printf '\n--> %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || fail "needs root (buildah with chroot isolation, network namespaces)"
bash scripts/deps.sh buildah ca-certificates curl iproute2 util-linux procps

BIN=${STATIC_BIN:-$ROOT/target/x86_64-unknown-linux-musl/release/aralez}
if [ ! -x "$BIN" ]; then
  step "no static binary yet: scripts/build-static.sh"
  bash scripts/build-static.sh
fi
file "$BIN" | grep -q 'statically linked\|static-pie linked' || fail "$BIN is not statically linked"

OUT=$ROOT/target/container
STORE=$OUT/storage
IMAGE=localhost/aralez:latest
BUILDAH=(buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run")
B() { "${BUILDAH[@]}" "$@"; }

# ---------------------------------------------------------------- build context and image
step "build context: target/container/context"
CTX=$OUT/context
R=$CTX/rootfs
rm -rf "$CTX"
mkdir -p "$R/etc/ssl/certs" "$R/etc/aralez/www" "$R/tmp" "$R/home" "$CTX/home/nonroot"
install -m 0755 "$BIN" "$CTX/aralez"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$R/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$R/etc/group"
cat > "$R/etc/aralez/main.yaml" <<'YAML'
# Aralez in its container (Containerfile): examples/main.yaml with the proxy on all of the
# container's addresses. The admin API stays on the container's loopback (the health check
# probes it); publish it only with a master_key set.
proxy_address_http: "0.0.0.0:8080"
config_address: "127.0.0.1:3000"
upstreams_conf: upstreams.yaml
upgrade_sock: /tmp/aralez.sock
threads: 1
log_level: info
access_log: all
file_server_folder: www
file_server_address: "127.0.0.1:3002"
YAML
install -m 0644 examples/upstreams.yaml "$R/etc/aralez/upstreams.yaml"
install -m 0644 examples/www/* "$R/etc/aralez/www/"
chmod 0644 "$R/etc/passwd" "$R/etc/group" "$R/etc/aralez/main.yaml"
find "$R" -type d -exec chmod 0755 {} +
chmod 1777 "$R/tmp"
chmod 0700 "$CTX/home/nonroot"
tar --numeric-owner --owner=65532 --group=65532 -C "$CTX" -cf "$CTX/nonroot-home.tar" home/nonroot
rm -rf "$CTX/home"
"$BIN" check --main "$R/etc/aralez/main.yaml" || fail "the container's main.yaml does not pass aralez check"

step "buildah bud (FROM scratch, offline)"
mkdir -p "$STORE"
B bud --quiet --format docker --isolation chroot -f Containerfile -t "$IMAGE" "$CTX" >/dev/null
# drop what an interrupted earlier run left: its working containers, then untagged images
B rm aralez-test-files aralez-test-run >/dev/null 2>&1 || true
B rmi --prune >/dev/null 2>&1 || true
B images "$IMAGE"
rm -f "$OUT/aralez-image.tar"
B push --quiet "$IMAGE" "docker-archive:$OUT/aralez-image.tar:$IMAGE" >/dev/null
echo "saved: target/container/aralez-image.tar ($(du -h "$OUT/aralez-image.tar" | cut -f1))"
[ "$BUILD_ONLY" = 1 ] && exit 0

# ---------------------------------------------------------------- image config
step "image config"
B inspect --type image "$IMAGE" > "$OUT/inspect.json"
# User, Entrypoint, Cmd, Healthcheck.Test, ExposedPorts (compact JSON, no blanks)
read -r user entry cmd health ports < <(python3 - "$OUT/inspect.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["Docker"]["config"]
v = [c.get("User"), c.get("Entrypoint"), c.get("Cmd"), (c.get("Healthcheck") or {}).get("Test"), c.get("ExposedPorts")]
print(" ".join(x if isinstance(x, str) else json.dumps(x, separators=(",", ":")) for x in v))
PY
)
echo "user=$user entrypoint=$entry cmd=$cmd healthcheck=$health ports=$ports"
[ "$user" = "65532:65532" ] || fail "USER is '$user', expected 65532:65532"
[ "$entry" = '["/aralez"]' ] || fail "ENTRYPOINT is $entry"
[ "$cmd" = '["-c","/etc/aralez/main.yaml"]' ] || fail "CMD is $cmd"
[ "$health" = '["CMD","/aralez","healthcheck","--url","http://127.0.0.1:3000/readyz"]' ] \
  || fail "HEALTHCHECK is $health"
[ "$ports" = '{"8080/tcp":{}}' ] || fail "EXPOSE is $ports"

# ---------------------------------------------------------------- containers, cleanup
WORK=$(mktemp -d /tmp/aralez-container-test.XXXXXX)
CTRS=(aralez-test-files aralez-test-run)   # working containers, by name
NS_PID=
APID=
cleanup() {
  set +e
  [ -n "$APID" ] && kill -INT "$APID" 2>/dev/null
  if [ -n "$NS_PID" ]; then
    for _ in $(seq 50); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$NS_PID" 2>/dev/null
    [ -n "$APID" ] && kill -KILL "$APID" 2>/dev/null
  fi
  for c in "${CTRS[@]}"; do B umount "$c" >/dev/null 2>&1; B rm "$c" >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT
new_container() { # name (one of CTRS, removed on exit) -> container id
  B rm "$1" >/dev/null 2>&1 || true
  B from --name "$1" "$IMAGE"
}

# ---------------------------------------------------------------- files in the image
step "files in the image"
files_ctr=$(new_container aralez-test-files)
mnt=$(B mount "$files_ctr")
(cd "$mnt" && find . -mindepth 1 -printf '%M %U:%G %p\n' | sort -k3) > "$WORK/files"
cat "$WORK/files"
cat > "$WORK/expected" <<'LIST'
-rwxr-xr-x 0:0 ./aralez
drwxr-xr-x 0:0 ./etc
drwxr-xr-x 0:0 ./etc/aralez
-rw-r--r-- 0:0 ./etc/aralez/main.yaml
-rw-r--r-- 0:0 ./etc/aralez/upstreams.yaml
drwxr-xr-x 0:0 ./etc/aralez/www
-rw-r--r-- 0:0 ./etc/aralez/www/index.html
-rw-r--r-- 0:0 ./etc/aralez/www/style.css
-rw-r--r-- 0:0 ./etc/group
-rw-r--r-- 0:0 ./etc/passwd
drwxr-xr-x 0:0 ./etc/ssl
drwxr-xr-x 0:0 ./etc/ssl/certs
-rw-r--r-- 0:0 ./etc/ssl/certs/ca-certificates.crt
drwxr-xr-x 0:0 ./home
drwx------ 65532:65532 ./home/nonroot
drwxrwxrwt 0:0 ./tmp
LIST
if ! diff -u "$WORK/expected" "$WORK/files"; then
  fail "the image's files differ from the expected list (- expected, + in the image)"
fi
cmp -s "$mnt/aralez" "$BIN" || fail "/aralez in the image is not $BIN"
grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd" || fail "no nonroot 65532 in /etc/passwd"
grep -q 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt" || fail "empty CA bundle"
echo "ok: $(wc -l < "$WORK/files") entries, as expected"

# ---------------------------------------------------------------- run it
step "aralez check inside the container"
run_ctr=$(new_container aralez-test-run)
B run --isolation chroot "$run_ctr" -- /aralez check --main /etc/aralez/main.yaml \
  || fail "aralez check --main /etc/aralez/main.yaml failed inside the container"

step "run the image's entrypoint in a network namespace of its own"
# ENTRYPOINT + CMD as the image declares them (buildah run does not apply them itself)
mapfile -t argv < <(python3 -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1]) + json.loads(sys.argv[2])]' "$entry" "$cmd")
echo "command: ${argv[*]}"
unshare --net --fork -- sh -c 'ip link set lo up && exec "$@"' sh \
  "${BUILDAH[@]}" run --isolation chroot "$run_ctr" -- "${argv[@]}" > "$WORK/aralez.log" 2>&1 &
NS_PID=$!

# the aralez process among the namespace's descendants (bounded)
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }
for _ in $(seq 100); do
  for p in $(descendants "$NS_PID"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = aralez ] && { APID=$p; break; }
  done
  [ -n "$APID" ] && break
  kill -0 "$NS_PID" 2>/dev/null || { cat "$WORK/aralez.log" >&2; fail "the container exited at start"; }
  sleep 0.1
done
[ -n "$APID" ] || { cat "$WORK/aralez.log" >&2; fail "no aralez process in the container after 10 s"; }
echo "aralez pid $APID"
IN_NS=(nsenter "--net=/proc/$APID/ns/net")
ready=0
for _ in $(seq 100); do
  if "${IN_NS[@]}" curl -sf -o /dev/null http://127.0.0.1:3000/readyz; then ready=1; break; fi
  sleep 0.1
done
[ "$ready" = 1 ] || { cat "$WORK/aralez.log" >&2; fail "admin /readyz not ready after 10 s"; }
[ "$(readlink "/proc/$APID/ns/net")" != "$(readlink /proc/self/ns/net)" ] \
  || fail "the container shares the host's network namespace"

step "the demo through the container's proxy port"
# Bounded retry: right after the start, a health check that ran before the file server was
# listening can leave its backend out of rotation (503) until the next check (hc_interval 2 s).
first=
for _ in $(seq 50); do
  code=$("${IN_NS[@]}" curl -s --max-time 5 -D "$WORK/headers" -o "$WORK/body" -w '%{http_code}' http://localhost:8080/)
  first=${first:-$code}
  [ "$code" = 200 ] && break
  sleep 0.1
done
[ "$code" = 200 ] || { cat "$WORK/aralez.log" >&2; fail "GET http://localhost:8080/ answered $code for 5 s, expected 200"; }
[ "$first" = 200 ] || echo "note: the first GET / after /readyz answered $first (backend not yet healthy), 200 after a retry"
cmp -s "$WORK/body" examples/www/index.html || fail "GET / body differs from examples/www/index.html"
# examples/upstreams.yaml's global response header: the answer went through the proxy
grep -qi '^Referrer-Policy: no-referrer' "$WORK/headers" || fail "no Referrer-Policy header (global headers of upstreams.yaml)"
code=$("${IN_NS[@]}" curl -s --max-time 5 -o "$WORK/css" -w '%{http_code}' http://localhost:8080/style.css)
[ "$code" = 200 ] && cmp -s "$WORK/css" examples/www/style.css || fail "GET /style.css: $code or wrong body"
code=$("${IN_NS[@]}" curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H 'Host: unknown.example' http://127.0.0.1:8080/)
[ "$code" = 404 ] || fail "an unrouted host answered $code, expected 404"
echo "ok: / 200 ($(wc -c < "$WORK/body") bytes, same as examples/www/index.html), /style.css 200, unknown host 404"

step "aralez healthcheck inside the container"
mapfile -t hc < <(python3 -c 'import json,sys; [print(a) for a in json.loads(sys.argv[1])[1:]]' "$health")
"${IN_NS[@]}" "${BUILDAH[@]}" run --isolation chroot "$run_ctr" -- "${hc[@]}" || fail "the image's HEALTHCHECK (${hc[*]}) exited $?"
echo "ok: ${hc[*]} exited 0"
if "${IN_NS[@]}" "${BUILDAH[@]}" run --isolation chroot "$run_ctr" -- /aralez healthcheck --url http://127.0.0.1:1/readyz 2>/dev/null; then
  fail "aralez healthcheck exited 0 against a closed port"
fi
echo "ok: against a closed port it exits non-zero"

step "the serving process's user"
grep -E '^(Uid|Gid|Groups):' "/proc/$APID/status"
read -r _ ruid euid suid fsuid < <(grep '^Uid:' "/proc/$APID/status")
read -r _ rgid egid sgid fsgid < <(grep '^Gid:' "/proc/$APID/status")
for id in "$ruid" "$euid" "$suid" "$fsuid" "$rgid" "$egid" "$sgid" "$fsgid"; do
  [ "$id" = 65532 ] || fail "aralez runs with uid/gid $ruid/$rgid (Uid: $ruid $euid $suid $fsuid, Gid: $rgid $egid $sgid $fsgid), expected 65532"
done
echo "ok: uid and gid 65532 (nonroot)"

step "stop"
kill -INT "$APID"
for _ in $(seq 100); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$NS_PID" 2>/dev/null && fail "the container did not stop within 10 s of SIGINT"
APID=
NS_PID=
echo
echo "container-test: ok ($IMAGE, $(du -h "$OUT/aralez-image.tar" | cut -f1) saved)"
