#!/bin/sh
# Rebuilds hello-1.0.0.tar.gz byte for byte (sorted names, fixed owner and time,
# gzip without a timestamp), so its SHA-256 matches the one in services/hello.yaml.
set -eu
cd "$(dirname "$0")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w --format=ustar \
  -C hello -cf - bin public | gzip -n -9 > hello-1.0.0.tar.gz
sha256sum hello-1.0.0.tar.gz
