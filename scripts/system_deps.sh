#!/usr/bin/env bash
# System packages the demo stack and the end-to-end tests need.
#   scripts/system_deps.sh           install what is missing (Debian/Ubuntu as root), else print the command and fail
#   scripts/system_deps.sh --check   only report; exit 1 if something is missing
# `make demo`, `make test-e2e` and .ci/run all go through this one script, so a fresh machine and CI
# get exactly the same packages.
set -euo pipefail

mode=install
case "${1:-}" in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

missing_pkgs=()
missing_what=()

need() { # need <debian package> <description> <check command...>
  local pkg=$1 what=$2; shift 2
  if ! "$@" >/dev/null 2>&1; then
    missing_pkgs+=("$pkg"); missing_what+=("$what")
  fi
}

has() { command -v "$1" >/dev/null 2>&1; }

pg_server() { # a PostgreSQL server (initdb + pg_ctl) of any version Debian ships
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || has initdb
}

java17() { # Spark 4 needs Java 17 or newer
  has java || return 1
  local v
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  [ "${v%%.*}" -ge 17 ] 2>/dev/null
}

need docker.io          "Docker Engine (dockerd, containerd, runc)" has dockerd
need docker.io          "Docker CLI"                                 has docker
need postgresql         "PostgreSQL server (initdb, pg_ctl)"         pg_server
need openjdk-17-jre-headless "Java 17 runtime for Spark"             java17
need debootstrap        "debootstrap (builds the producer base image offline from Debian packages)" has debootstrap
need openssl            "openssl"                                    has openssl
need python3-venv       "Python venv module"                         python3 -c "import venv, ensurepip"
need procps             "ps/pgrep"                                   has ps
need tar                "tar"                                        has tar
need shellcheck         "shellcheck (lints the kind-test scripts)"   has shellcheck
need openssh-client     "ssh-keygen (kind-test's generated deploy key)" has ssh-keygen
need faketime          "faketime (the DAG layer runs again with the clock years ahead)" has faketime
need prometheus        "Prometheus and promtool (the stack's alerting; unit tests of the rules)" has promtool
need prometheus-alertmanager "Alertmanager and amtool (the stack routes alerts to the Slack stand-in)" has amtool
need golang-go         "Go 1.21 or newer (builds the statsd exporter from its Go module)" has go
need chromium          "Chromium (the e2e layer's browser test drives the UI with Playwright)" has chromium

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  echo "system_deps: all system packages present"
  exit 0
fi

# unique package list, order kept
pkgs=$(printf '%s\n' "${missing_pkgs[@]}" | awk '!seen[$0]++' | tr '\n' ' ')
echo "system_deps: missing:"
for w in "${missing_what[@]}"; do echo "  - $w"; done

is_debian=false
if [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; then is_debian=true; fi

if [ "$mode" = check ]; then
  echo "system_deps: install with: sudo apt-get install -y --no-install-recommends $pkgs"
  exit 1
fi
if ! $is_debian; then
  echo "system_deps: this is not Debian or Ubuntu; install the equivalents of these Debian packages: $pkgs" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system_deps: not root; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends $pkgs" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Another agent or unattended-upgrades may hold the dpkg lock: wait for it instead of failing.
apt_opts=(-o DPkg::Lock::Timeout=600 -y --no-install-recommends)
echo "system_deps: apt-get update"
apt-get -o DPkg::Lock::Timeout=600 update -qq
echo "system_deps: apt-get install $pkgs"
# shellcheck disable=SC2086
apt-get "${apt_opts[@]}" install -qq $pkgs
# docker.io's postinst may start a system dockerd; the demo runs its own daemons and never uses it.
exec "$0" --check
