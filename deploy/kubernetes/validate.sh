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

# The check must be able to fail: the shards Job with a misspelt field is refused.
broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
sed 's/^\(\s*\)completions:/\1completionz:/' "$here/shards-job.yaml" > "$broken"
grep -q completionz "$broken" || { echo "validate.sh: could not make the broken copy" >&2; exit 1; }
if "$kv" --strict --kubernetes-version "${KUBERNETES_VERSION:-1.30}" "$broken" >/dev/null 2>&1; then
    echo "validate.sh: a Job with 'completionz' passed validation: the check is not checking" >&2
    exit 1
fi
echo "validate.sh: a misspelt field is refused, as it must be"
