#!/usr/bin/env bash
# Builds the mcpd image without a registry: a FROM-scratch image holding the release
# binaries (mcpd, mcp-test-server, mcpd-probe), the shared libraries `ldd` lists for them,
# and the few files name resolution needs. The result has the same layout as the image the
# repo-root Dockerfile builds with internet access.
#
#   cluster/compose/build-image.sh [--bin-dir DIR] [--tag TAG] [--prometheus-tag TAG]
#
# --bin-dir        where the release binaries are (default: target/release; build them with
#                  `cargo build --release --bins`)
# --tag            image tag (default: $MCPD_IMAGE or mcp-rust/mcpd:local)
# --prometheus-tag also builds a Prometheus image from this machine's `prometheus` binary
#                  (Debian package), if there is one (default: $PROMETHEUS_IMAGE, or none)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir="$repo/target/release"
tag="${MCPD_IMAGE:-mcp-rust/mcpd:local}"
prom_tag="${PROMETHEUS_IMAGE:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --prometheus-tag) prom_tag=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Copies a binary to DEST inside ROOT, with every library it loads at the path the loader
# looks for it.
add_binary() {
  local root=$1 src=$2 dest=$3
  [ -x "$src" ] || { echo "missing binary: $src" >&2; exit 1; }
  install -D -m 0755 "$src" "$root$dest"
  local lib
  # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
  # "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no file.
  for lib in $(ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    if [ ! -e "$root$lib" ]; then
      install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    fi
  done
}

# The files every image needs: name resolution through /etc/hosts and Docker's DNS (glibc
# >= 2.34 has the files and dns NSS modules inside libc; older ones need the libnss_ files),
# an unprivileged user, a writable /tmp and CA certificates for https upstreams.
base_files() {
  local root=$1 user=$2 uid=$3
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf 'root:x:0:0:root:/:/nonexistent\n%s:x:%s:%s:%s:/nonexistent:/nonexistent\n' \
    "$user" "$uid" "$uid" "$user" >"$root/etc/passwd"
  printf 'root:x:0:\n%s:x:%s:\n' "$user" "$uid" >"$root/etc/group"
  local nss
  for nss in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libnss_dns.so.2 \
             /lib/aarch64-linux-gnu/libnss_files.so.2 /lib/aarch64-linux-gnu/libnss_dns.so.2; do
    [ -e "$nss" ] && install -D -m 0644 "$(readlink -f "$nss")" "$root$nss"
  done
  if [ -e /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  fi
}

docker_build() {
  # FROM scratch needs no registry; the legacy builder is the one every engine has.
  DOCKER_BUILDKIT=0 docker build --quiet -t "$1" "$2" >/dev/null 2>"$2.err" || {
    cat "$2.err" >&2
    exit 1
  }
}

# --- mcpd ---
ctx="$work/mcpd"
root="$ctx/rootfs"
for b in mcpd mcp-test-server mcpd-probe; do
  add_binary "$root" "$bin_dir/$b" "/usr/local/bin/$b"
done
base_files "$root" mcpd 10001
mkdir -p "$ctx/data"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=10001:10001 data /data
ENV MCPD_DATA_DIR=/data
USER 10001:10001
EXPOSE 7400 9400
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/mcpd-probe", "http://127.0.0.1:9400/readyz"]
ENTRYPOINT ["/usr/local/bin/mcpd"]
CMD ["node"]
DOCKERFILE
docker_build "$tag" "$ctx"
echo "built $tag"

# --- prometheus (optional) ---
if [ -n "$prom_tag" ]; then
  prom=$(command -v prometheus || true)
  if [ -z "$prom" ]; then
    echo "no prometheus binary on this machine (Debian: apt-get install prometheus); skipped $prom_tag" >&2
  else
    ctx="$work/prometheus"
    root="$ctx/rootfs"
    add_binary "$root" "$prom" /bin/prometheus
    base_files "$root" prometheus 10002
    mkdir -p "$ctx/data"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
COPY --chown=10002:10002 data /prometheus
USER 10002:10002
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
    docker_build "$prom_tag" "$ctx"
    echo "built $prom_tag"
  fi
fi
