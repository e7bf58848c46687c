#!/usr/bin/env bash
# Pins the Dockerfiles' base image by digest: resolves NODE_IMAGE's tag (node:<.node-version>-bookworm-slim)
# in its registry and rewrites the `ARG NODE_IMAGE=` defaults to `tag@sha256:...`. Run it where a
# registry is reachable (not on these machines), after changing .node-version, and commit the result.
#   scripts/pin-base-images.sh            # uses docker buildx imagetools, or skopeo, or crane
set -euo pipefail
cd "$(dirname "$0")/.."
tag="node:$(cat .node-version)-bookworm-slim"
if command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then
  digest=$(docker buildx imagetools inspect "$tag" --format '{{json .Manifest}}' | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p' | head -n 1)
elif command -v skopeo >/dev/null; then
  digest=$(skopeo inspect --format '{{.Digest}}' "docker://docker.io/library/$tag")
elif command -v crane >/dev/null; then
  digest=$(crane digest "$tag")
else
  echo "no docker buildx, skopeo or crane to resolve $tag" >&2
  exit 1
fi
[ -n "$digest" ] || { echo "could not resolve the digest of $tag (is a registry reachable?)" >&2; exit 1; }
for f in Dockerfile.api Dockerfile.worker Dockerfile.emulators; do
  sed -i -E "s|^ARG NODE_IMAGE=.*$|ARG NODE_IMAGE=${tag}@${digest}|" "$f"
done
echo "pinned $tag@$digest in Dockerfile.api, Dockerfile.worker, Dockerfile.emulators"
