#!/usr/bin/env bash
# Install the Debian packages the test suite drives for real (openssl, nginx, apache2,
# haproxy, keytool, curl, iproute2, mount, ab for the OCSP benchmark, systemd-analyze for
# the agent's units, SoftHSM2 for the CA keys in a PKCS#11 token, promtool (Debian's prometheus)
# for the metrics and alert rules, chromium + chromedriver for the web UI walk (selenium), and the nginx modules
# the generated configurations need), only when something is missing. Needs root or sudo.
set -euo pipefail

declare -A PACKAGE_OF=(
  [openssl]=openssl [curl]=curl [nginx]=nginx-light [apache2]=apache2 [haproxy]=haproxy
  [keytool]=default-jre-headless [ip]=iproute2 [unshare]=util-linux [setpriv]=util-linux [mount]=mount
  [ab]=apache2-utils [systemd-analyze]=systemd [softhsm2-util]=softhsm2 [promtool]=prometheus
  [chromium]=chromium [chromedriver]=chromium-driver
)
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
# Debian builds nginx's stream module (deploy --upstream tcp://) as a separate package.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
# nginx modules (files, not commands): njs computes the SHA-256 fingerprint and CN,
# headers-more removes the client-sent identity-header family.
declare -A PACKAGE_OF_MODULE=(
  [ngx_http_js_module.so]=libnginx-mod-http-js
  [ngx_http_headers_more_filter_module.so]=libnginx-mod-http-headers-more-filter
)
for module in "${!PACKAGE_OF_MODULE[@]}"; do
  [ -e "/usr/lib/nginx/modules/$module" ] || missing+=("${PACKAGE_OF_MODULE[$module]}")
done
# PostgreSQL's server binaries (initdb, postgres, pg_dump): the tests start their own server.
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# sqlite3's shell: the anchor of bench/bench_backup.py (sqlite3 .backup + tar)
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system services on install; the tests run their own, on free ports.
for service in nginx apache2 haproxy postgresql prometheus; do
  $SUDO service "$service" stop >/dev/null 2>&1 || true
done
