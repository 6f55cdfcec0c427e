#!/usr/bin/env bash
# Lays out the runtime stage of dptrain's images (k8s/image/Containerfile*), run as root during the build once
# /usr/local/bin/dptrain and the packages are in: the non-root user, its sshd, the entrypoint, the mount points.
set -euo pipefail
here=$(dirname "$0")

if ldd /usr/local/bin/dptrain | grep 'not found'; then
  echo "install-runtime: libraries of /usr/local/bin/dptrain are missing from the image; add their packages" >&2
  exit 1
fi
# uid 1000, as the MPI Operator's non-root examples run their pods (securityContext.runAsUser: 1000).
useradd --uid 1000 --user-group --create-home --shell /bin/bash dptrain
install -m 644 "$here/ssh_config" /etc/ssh/ssh_config.d/dptrain.conf
install -m 644 -o dptrain -g dptrain "$here/sshd_config" /home/dptrain/.sshd_config
# Host keys made here, readable by the non-root sshd only; the image's root sshd keys are not used.
rm -f /etc/ssh/ssh_host_*
install -d -m 700 -o dptrain -g dptrain /home/dptrain/.sshd
for type in ed25519 ecdsa rsa; do
  ssh-keygen -q -t "$type" -N '' -C "dptrain-image" -f "/home/dptrain/.sshd/ssh_host_${type}_key"
done
chown dptrain:dptrain /home/dptrain/.sshd/*
install -m 755 "$here/dptrain-k8s" /usr/local/bin/dptrain-k8s
# Mount points of the manifests: the shared volume, the operator's hostfile and ssh Secret, the config.
install -d -m 755 /etc/mpi /etc/dptrain
install -d -o dptrain -g dptrain /data /home/dptrain/.ssh
