#!/usr/bin/env bash
# Builds dptrain's CPU container image localhost/dptrain:cpu with podman (idempotent and cached): a Debian 12 base
# made once with mmdebstrap and `podman import`, then k8s/image/Containerfile with podman's layer cache, the
# host's ccache mounted into the builder stage, and downloaded .debs kept between builds.
#
#   bash scripts/build-image.sh [podman build args...]      e.g. --no-cache, or --build-arg BASE_IMAGE=...
#
# Environment: DPTRAIN_IMAGE (tag, default localhost/dptrain:cpu), DPTRAIN_IMAGE_CACHE (base tarball and .debs,
# default /var/cache/dptrain-image), DPTRAIN_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

image=${DPTRAIN_IMAGE:-localhost/dptrain:cpu}
cache=${DPTRAIN_IMAGE_CACHE:-/var/cache/dptrain-image}
mirror=${DPTRAIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=localhost/dptrain-base:bookworm
# No systemd or journald here: podman drives cgroups itself and logs events to a file.
export CONTAINERS_CONF=$PWD/k8s/image/containers.conf

for tool in podman mmdebstrap ccache; do
  command -v "$tool" > /dev/null || { echo "build-image: $tool is missing; run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$cache/apt-archives"
start=$SECONDS

# The base: Debian 12 from the Debian mirror, minbase plus the CA certificates, with its updates and security.
if ! podman image exists "$base"; then
  tarball=$cache/debian-bookworm.tar
  if [ ! -s "$tarball" ]; then
    echo "build-image: making the Debian 12 base with mmdebstrap ($mirror)"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates --format=tar bookworm "$tarball.partial" \
      "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
      "deb ${mirror%/debian}/debian-security bookworm-security main"
    mv "$tarball.partial" "$tarball"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$base" > /dev/null
fi

# The builder's ccache is the host's (its cache_dir and compiler_check), so host and image builds share objects.
ccache_dir=$(ccache --get-config cache_dir)
compiler_check=$(ccache --get-config compiler_check)
locale=$(env | grep -E '^(LANG|LC_ALL|LC_CTYPE|LC_MESSAGES)=' | tr '\n' ' ' || true)
mkdir -p "$ccache_dir"
# chroot isolation: RUN steps work where podman's OCI runtimes cannot start a container (rlimits, cgroups).
podman build --isolation chroot --layers --build-arg BASE_IMAGE="$base" --build-arg CCACHE_COMPILERCHECK="$compiler_check" \
  --build-arg BUILD_LOCALE="$locale" \
  --volume "$ccache_dir:/ccache" --volume "$cache/apt-archives:/var/cache/apt/archives" \
  -f k8s/image/Containerfile -t "$image" "$@" .
echo "build-image: $image built in $((SECONDS - start)) s"
