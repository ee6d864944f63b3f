#!/usr/bin/env bash
# Builds the image the docker-transport tests run: FROM scratch, holding only the repo's
# test MCP server and the shared libraries `ldd` lists for it (no registry, no pull; the
# same offline approach as cluster/compose/build-image.sh).
#
#   tests/docker/build-test-image.sh --bin PATH --tag TAG [--http-tag TAG]
#
# --bin       the mcp-test-server binary (target/debug/mcp-test-server)
# --tag       image whose entrypoint is the server (stdio unless told otherwise by args)
# --http-tag  also tag an image whose default command serves Streamable HTTP on 0.0.0.0:8001
#             (the migration guide's Example 1 deploys such an image by port alone)
set -euo pipefail

bin="" tag="" http_tag=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --http-tag) http_tag=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "missing binary: $bin" >&2; exit 1; }
[ -n "$tag" ] || { echo "--tag is required" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
install -D -m 0755 "$bin" "$root/usr/local/bin/mcp-test-server"
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
mkdir -p "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/:/nonexistent\nmcp:x:10001:10001:mcp:/nonexistent:/nonexistent\n' >"$root/etc/passwd"

build() {
  # The image the tag named before, removed once replaced so that rebuilds leave no
  # dangling images behind (kept while a container still uses it).
  local old
  old=$(docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true)
  # FROM scratch needs no registry; the legacy builder is the one every engine has.
  DOCKER_BUILDKIT=0 docker build --quiet -t "$1" -f "$2" "$work" >/dev/null 2>"$work/err" || {
    cat "$work/err" >&2
    exit 1
  }
  local new
  new=$(docker image inspect --format '{{.Id}}' "$1")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
}

cat >"$work/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/mcp-test-server"]
DOCKERFILE
build "$tag" "$work/Dockerfile"
echo "built $tag"

if [ -n "$http_tag" ]; then
  cat >"$work/Dockerfile.http" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
USER 10001:10001
EXPOSE 8001
ENTRYPOINT ["/usr/local/bin/mcp-test-server"]
CMD ["--transport", "http", "--host", "0.0.0.0", "--port", "8001"]
DOCKERFILE
  build "$http_tag" "$work/Dockerfile.http"
  echo "built $http_tag"
fi
