#!/usr/bin/env bash
# Builds Berth's runtime container image without a registry: the berth binary, the shared
# libraries `ldd` lists for it, /etc/passwd and /etc/group with the non-root user berth, the
# system CA store and the default config, in a minimal root filesystem brought in with `docker import`. Same entrypoint,
# user, exposed ports and config as the Dockerfile's image.
#   scripts/image.sh [TAG] [BERTH_BINARY]     (default berth:local and build/berth)
# Uses $DOCKER_HOST like the docker CLI. Prints the image id.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tag=${1:-berth:local}
binary=${2:-$src/build/berth}
[[ -x $binary ]] || { echo "image.sh: no berth binary at $binary (build it first: scripts/build.sh)" >&2; exit 1; }
command -v docker >/dev/null || { echo "image.sh: docker CLI not found" >&2; exit 1; }

# The same user ids as the Dockerfile's `useradd --system --uid 10001 berth`.
uid=10001
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/berth-rootfs.XXXXXX")
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs/usr/bin" "$rootfs/etc/berth" "$rootfs/tmp" "$rootfs/var/lib/berth" "$rootfs/var/run"
install -m 0755 "$binary" "$rootfs/usr/bin/berth"
strip --strip-unneeded "$rootfs/usr/bin/berth" 2>/dev/null || true

# Every library the dynamic loader will map, at the path it looks for it (ldd prints
# "name => /path (addr)" and the loader itself as "/lib64/ld-linux-x86-64.so.2 (addr)").
libs=$(ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }')
[[ -n $libs ]] || { echo "image.sh: ldd found no libraries for $binary (static?)" >&2; exit 1; }
for lib in $libs; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
berth:x:$uid:$uid:Berth reverse proxy:/var/lib/berth:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
berth:x:$uid:
GROUP
echo "passwd: files
group: files
hosts: files" >"$rootfs/etc/nsswitch.conf"
install -m 0644 "$src/packaging/container/berth.yaml" "$rootfs/etc/berth/berth.yaml"
# The system CA store (ca-certificates): upstream TLS without a 'ca' verifies against it.
store=/etc/ssl/certs/ca-certificates.crt
[[ -s $store ]] || { echo "image.sh: $store is missing (apt-get install ca-certificates)" >&2; exit 1; }
install -D -m 0644 "$store" "$rootfs$store"
install -m 0644 "$src/config/berth.example.yaml" "$rootfs/etc/berth/berth.example.yaml"
chmod 1777 "$rootfs/tmp"
chmod 0755 "$rootfs"
# Files belong to root, the state directory to berth (as root; otherwise all become root's
# in the tar stream and /var/lib/berth stays read-only for berth, which Berth does not need yet).
if [[ $(id -u) -eq 0 ]]; then
  chown -R 0:0 "$rootfs"
  chown "$uid:$uid" "$rootfs/var/lib/berth"
  owner=()
else
  owner=(--owner=0 --group=0)
fi

tar --numeric-owner "${owner[@]}" -C "$rootfs" -c . |
  docker import \
    --change 'ENTRYPOINT ["/usr/bin/berth"]' \
    --change 'CMD ["--config", "/etc/berth/berth.yaml"]' \
    --change "USER $uid:$uid" \
    --change 'WORKDIR /var/lib/berth' \
    --change 'EXPOSE 8080' \
    --change "LABEL org.opencontainers.image.title=berth org.opencontainers.image.version=$("$binary" --version | awk '{print $2}')" \
    --message "berth runtime image (scripts/image.sh)" \
    - "$tag"
