#!/usr/bin/env bash
# Installs what the workspace's build and tests need on a fresh Debian (12) machine, as root.
# Idempotent: a second run installs nothing and only checks. Works without a terminal (CI=true).
#
#   apt: kcat (Debian's 1.7.1, linking librdkafka 2.0.2) for broker/tests/compat.rs;
#        iproute2 (`ip`) for partition faults: kbench runs the embedded brokers of such a
#        scenario in network namespaces it makes with `ip` (tests/faults.rs, scenarios/partition.toml);
#        build-essential (gcc, g++, make) for rdkafka-sys: it runs librdkafka's own ./configure
#        (a bash script that insists on a C and a C++ compiler) and make, and zlib / zstd are
#        compiled from source by libz-sys ("static") and zstd-sys with cc. pkg-config is
#        consulted by that configure when present. Not needed: cmake (rdkafka's "cmake-build"
#        feature is off), perl (no vendored OpenSSL), python3 (only librdkafka's optional
#        linker script). python3-venv only when the python3 on PATH cannot make a virtualenv.
#        libssl-dev: librdkafka links the system OpenSSL (rdkafka's "ssl" feature) for TLS and
#        SASL clusters. openssl: compat/kafka/kafka.sh makes a CA for its sasl_tls clusters.
#        valgrind: benches/hot-path-guard.sh counts the per-message instructions with callgrind.
#        chromium: tests/report_screenshot.rs renders report.html headless and checks each chart is
#        on screen (its text uses fonts-dejavu-core, which chromium's fontconfig pulls in).
#        A Java 17+ runtime and Maven when missing (the machine image has both): tests/kafka.rs
#        runs a real Apache Kafka from Maven Central's jars, fetched here once.
#   <repo>/.venv: a virtualenv with compat/requirements.txt (confluent-kafka, kafka-python, codecs)
#        and kubernetes-validate (deploy/kubernetes/validate.sh).
#
#   cargo-fuzz (crates.io, `cargo install --locked`) and the nightly toolchain (rustup, when the
#        machine lacks it) for the fuzz targets in fuzz/.
#
# Rust (cargo, rustc) is expected on the machine already.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "install-deps: not root and no sudo; run as root" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-python3}
APT_PACKAGES=(kcat build-essential pkg-config iproute2 libssl-dev openssl valgrind chromium)
if ! command -v java >/dev/null 2>&1; then
    APT_PACKAGES+=(openjdk-17-jre-headless)
fi
if ! command -v mvn >/dev/null 2>&1; then
    APT_PACKAGES+=(maven)
fi
# python3 -m venv needs ensurepip; Debian's own python3 has it in python3-venv.
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    APT_PACKAGES+=(python3-venv python3-pip)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-deps: apt packages present (${APT_PACKAGES[*]})"
fi
kcat -V 2>&1 | sed -n '/^Version/p'

VENV="$REPO/.venv"
# A venv whose interpreter no longer runs (python moved or upgraded) is made anew.
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "install-deps: $VENV is broken; recreating"
    rm -rf "$VENV"
fi
if [ ! -e "$VENV/bin/python" ]; then
    echo "install-deps: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -r "$REPO/compat/requirements.txt"
"$VENV/bin/python" - <<'PY'
import confluent_kafka, kafka, kafka.codec as c
assert c.has_snappy() and c.has_lz4() and c.has_zstd(), "kafka-python codec libraries missing"
v = confluent_kafka.__version__
print(f"install-deps: confluent-kafka {v} "
      f"(librdkafka {confluent_kafka.libversion()[0]}), kafka-python {kafka.__version__}")
PY

# The Kubernetes manifests of deploy/kubernetes are validated offline against the API schemas
# that kubernetes-validate (PyPI) ships (deploy/kubernetes/validate.sh). Pinned like the rest.
"$VENV/bin/python" -m pip install -q "kubernetes-validate==1.37.0"
echo "install-deps: $("$VENV/bin/kubernetes-validate" --version 2>&1 | head -1)"

# Apache Kafka's jars (compat/kafka/pom.xml) into ~/.cache/kbench, once.
echo "install-deps: Apache Kafka jars in $("$REPO/compat/kafka/kafka.sh" libs)"

# The fuzz targets (fuzz/) build with cargo-fuzz on the nightly toolchain.
if cargo +nightly --version >/dev/null 2>&1; then
    echo "install-deps: $(cargo +nightly --version) present"
else
    echo "install-deps: rustup toolchain install nightly --profile minimal"
    rustup toolchain install nightly --profile minimal
fi
if cargo fuzz --version >/dev/null 2>&1; then
    echo "install-deps: $(cargo fuzz --version) present"
else
    echo "install-deps: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi

# The Java client checks (compat/java): kafka-clients and Maven's build plugins into ~/.m2, once,
# so the tests can build it offline (`mvn -q -o package`).
if ! (cd "$REPO/compat/java" && mvn -q -B -o package >/dev/null 2>&1); then
    (cd "$REPO/compat/java" && mvn -q -B package)
fi
echo "install-deps: Java client checks built in $REPO/compat/java/target"
