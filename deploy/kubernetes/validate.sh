#!/usr/bin/env bash
# Validates the manifests in this folder against the Kubernetes API schemas that the
# kubernetes-validate package (PyPI) ships, offline; no cluster needed. Strict: unknown fields
# fail. Uses <repo>/.venv (made by .ci/install-deps.sh) when no kubernetes-validate is on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kv=kubernetes-validate
if ! command -v "$kv" >/dev/null 2>&1; then
    kv="$here/../../.venv/bin/kubernetes-validate"
fi
"$kv" --strict --kubernetes-version "${KUBERNETES_VERSION:-1.30}" "$here"/*.yaml
