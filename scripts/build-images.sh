#!/usr/bin/env bash
# Builds images from images/<name>/Dockerfile with buildah (Debian), without a registry:
#   scripts/build-images.sh [--import SOCKET] NAME...   (NAME: controller agent pytorch nats)
# The Dockerfiles' own steps run unchanged; only their base images are local: one Debian bookworm
# rootfs made by debootstrap (python3 included) becomes DEBIAN_IMAGE, PYTHON_IMAGE and, with Node.js
# 24 and npm added, NODE_IMAGE, passed as --build-arg. Each image is cached as an OCI archive under
# $LLEM_CACHE/images/<name>-<hash>.tar, where the hash covers the Dockerfile, the files its COPY
# lines read, the base recipe and the build args, so an unchanged image is never rebuilt.
# Prints one line per image on stdout: NAME IMAGE_REF ARCHIVE SECONDS (0 when cached), where
# IMAGE_REF is localhost/llem-NAME:<hash>. --import loads each into that containerd (namespace k8s.io).
# LLEM_IMAGE_ARGS_<NAME> adds build args, e.g. LLEM_IMAGE_ARGS_PYTORCH="INSTALL_TORCH=0"; LLEM_IMAGE_FORCE=1
# builds even when the archive is cached, LLEM_IMAGE_NO_CACHE=1 without buildah's layer cache (bench).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
OUT="$CACHE/images"
ROOTFS_RECIPE=1 # bump when the debootstrap line changes
BASE_RECIPE=2   # bump when the base images made from it change
# Node.js for NODE_IMAGE: the one scripts/node-env.sh cached, else this machine's (already >= 22 there).
NODE_BIN="${LLEM_IMAGE_NODE:-$CACHE/node24/bin/node}"
[ -x "$NODE_BIN" ] || NODE_BIN=$(readlink -f "$(command -v node)")
NPM_DIR="${LLEM_IMAGE_NPM:-$(dirname "$(readlink -f "$(command -v npm)")")/..}"
SOCK=""
if [ "${1:-}" = "--import" ]; then SOCK=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: scripts/build-images.sh [--import SOCKET] controller|agent|pytorch|nats ..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build-images: needs root (buildah, debootstrap)" >&2; exit 1; }
for b in buildah debootstrap; do command -v $b >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $b >/dev/null; done
mkdir -p "$OUT"
export BUILDAH_ISOLATION=chroot STORAGE_DRIVER=overlay
log() { echo "build-images: $*" >&2; }

base_tag="bookworm-r$BASE_RECIPE-$(sha256sum "$NODE_BIN" | cut -c1-8)"
ensure_bases() {
  buildah images -q "localhost/llem-base-node:$base_tag" >/dev/null 2>&1 && return 0
  local t0 rootfs="$OUT/rootfs/debian-bookworm-r$ROOTFS_RECIPE" c
  t0=$(date +%s)
  if [ ! -d "$rootfs" ]; then
    rm -rf "$rootfs.tmp"
    mkdir -p "$OUT/rootfs"
    nice debootstrap --variant=minbase --include=python3,python3-venv,libstdc++6,ca-certificates bookworm "$rootfs.tmp" \
      "${LLEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
    rm -rf "$rootfs.tmp/var/cache/apt/archives/"*.deb "$rootfs.tmp/var/lib/apt/lists/"*
    mv "$rootfs.tmp" "$rootfs"
  fi
  c=$(buildah from scratch)
  local mnt; mnt=$(buildah mount "$c")
  tar -C "$rootfs" -c . | tar -C "$mnt" -x
  ln -sf /usr/bin/python3 "$mnt/usr/local/bin/python"
  # The build steps fetch from npm and Debian through whatever this machine trusts (a TLS-inspecting
  # egress proxy, say): the bases carry the host's CA bundle, and Node.js is told to use it.
  cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
  buildah umount "$c" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt "$c"
  buildah commit -q "$c" "localhost/llem-base-debian:$base_tag" >/dev/null
  mnt=$(buildah mount "$c")
  install -m 0755 "$NODE_BIN" "$mnt/usr/local/bin/node"
  mkdir -p "$mnt/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$mnt/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
  buildah umount "$c" >/dev/null
  buildah commit -q --rm "$c" "localhost/llem-base-node:$base_tag" >/dev/null
  log "setup step: base images $(( $(date +%s) - t0 ))s"
}

# The files a Dockerfile's COPY lines read from the build context (not --from stages).
copy_sources() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$1" | awk 'toupper($1) == "COPY" && $2 !~ /^--from/ {
    n = 0; for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }'
}

content_hash() {
  local name=$1 df="images/$1/Dockerfile" extra=$2
  {
    echo "recipe $BASE_RECIPE $base_tag $extra"
    sha256sum "$df"
    local srcs
    mapfile -t srcs < <(copy_sources "$df")
    # No COPY from the context (the NATS image): nothing else to hash (find with no path would read all of .).
    if [ ${#srcs[@]} -gt 0 ]; then
      find "${srcs[@]}" -type f -not -path '*/__pycache__/*' -not -path '*/node_modules/*' -print0 2>/dev/null \
        | sort -z | xargs -0 -r sha256sum
    fi
  } | sha256sum | cut -c1-16
}

# Every source change makes new controller and agent images: without pruning, the archives (~0.3 GB
# each), buildah's storage (~1 GB of layers per build) and the node's containerd would grow by that
# much per CI run. Kept: the two newest archives of NAME (another checkout may be using the previous
# one), their tags, and the intermediate images (buildah's layer cache, which keeps `npm ci` from
# rerunning) that the builds of kept archives used, as their .layers files list.
prune_archives() {
  local name=$1 old
  for old in $(ls -t "$OUT/$name"-*.tar 2>/dev/null | tail -n +3); do rm -f "$old" "$old.layers"; done
  for old in $(buildah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null | grep "^localhost/llem-$name:" || true); do
    [ -f "$OUT/$name-${old##*:}.tar" ] || buildah rmi -f "$old" >/dev/null 2>&1 || true
  done
}
prune_layers() {
  local id keep
  keep=$(cat "$OUT"/*.tar.layers 2>/dev/null || true)
  # Untagged images, newest first (children before their parents); one still in use is refused.
  for id in $(buildah images -a --format '{{.ID}} {{.Name}}' 2>/dev/null | awk '$2 == "<none>" { print $1 }'); do
    grep -q "^${id:0:11}" <<<"$keep" || buildah rmi "$id" >/dev/null 2>&1 || true
  done
}

# Images of NAME in the node's containerd other than REF: removed (containerd then frees their content).
unimport_others() {
  local name=$1 ref=$2 old
  for old in $(ctr -a "$SOCK" -n k8s.io images ls -q | grep "^localhost/llem-$name:" || true); do
    [ "$old" = "$ref" ] || ctr -a "$SOCK" -n k8s.io images rm "$old" >/dev/null 2>&1 || true
  done
}

built=0
for name in "$@"; do
  df="images/$name/Dockerfile"
  [ -f "$df" ] || { echo "build-images: no $df" >&2; exit 2; }
  var="LLEM_IMAGE_ARGS_$(echo "$name" | tr 'a-z-' 'A-Z_')"
  extra="${!var:-}"
  hash=$(content_hash "$name" "$extra")
  ref="localhost/llem-$name:$hash"
  tar="$OUT/$name-$hash.tar"
  secs=0
  if [ ! -f "$tar" ] || [ "${LLEM_IMAGE_FORCE:-0}" = 1 ]; then
    ensure_bases
    t0=$(date +%s)
    args=(--build-arg "DEBIAN_IMAGE=localhost/llem-base-debian:$base_tag" --build-arg "PYTHON_IMAGE=localhost/llem-base-debian:$base_tag"
      --build-arg "NODE_IMAGE=localhost/llem-base-node:$base_tag")
    for a in $extra; do args+=(--build-arg "$a"); done
    [ "${LLEM_IMAGE_NO_CACHE:-0}" = 1 ] && args+=(--no-cache)
    log "building $ref from $df"
    # Not -q: the "--> ID" lines name every intermediate image this build used (kept by prune).
    nice buildah bud --layers --network host --pull-never "${args[@]}" -f "$df" -t "$ref" . > "$tar.log" 2>&1 \
      || { tail -n 40 "$tar.log" >&2; exit 1; }
    grep -oE '^--> (Using cache )?[0-9a-f]{11,}' "$tar.log" | awk '{ print substr($NF, 1, 11) }' | sort -u > "$tar.layers"
    rm -f "$tar.log"
    rm -f "$tar.tmp"
    buildah push -q "$ref" "docker-archive:$tar.tmp:$ref" >&2
    mv "$tar.tmp" "$tar"
    secs=$(( $(date +%s) - t0 ))
    log "setup step: image $name built in ${secs}s"
    built=1
  fi
  touch "$tar" # the archive in use is the newest: pruning keeps it
  prune_archives "$name"
  # The list is read whole before grep: with pipefail, `ctr ... | grep -q` fails whenever grep exits
  # before ctr's last write (SIGPIPE); on the real node that spuriously failed 6 checks in 40.
  if [ -n "$SOCK" ] && ! grep -qx "$ref" <<<"$(ctr -a "$SOCK" -n k8s.io images ls -q)"; then
    ctr -a "$SOCK" -n k8s.io images import "$tar" >/dev/null
    grep -qx "$ref" <<<"$(ctr -a "$SOCK" -n k8s.io images ls -q)" || { echo "build-images: $tar did not import as $ref" >&2; exit 1; }
    unimport_others "$name" "$ref"
  fi
  echo "$name $ref $tar $secs"
done
[ "$built" = 0 ] || prune_layers
