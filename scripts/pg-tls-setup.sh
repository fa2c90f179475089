#!/usr/bin/env bash
# Turns on TLS in the local PostgreSQL (a Debian cluster, /etc/postgresql/<version>/main) for
# the TLS tests: a self-signed CA, a server certificate for `localhost` and 127.0.0.1, a
# conf.d file with ssl = on and the certificate's paths, and a reload. Plain connections keep
# working (the `host ... trust` line stays; `hostssl` lines are added before it).
#
# Idempotent: certificates that exist and are still valid for a day are kept; configuration
# that is already there is not written again. Run as root (or as a user who can write the
# cluster's configuration and run pg_ctlcluster).
#
# Prints the CA's path on its last line; the CA is copied to $CQRS_PG_TLS_DIR
# (default /tmp/cqrs-pg-tls/ca.crt), where cqrs-runtime/tests/postgres_tls.rs reads it.
set -euo pipefail

out_dir="${CQRS_PG_TLS_DIR:-/tmp/cqrs-pg-tls}"

if ! command -v openssl >/dev/null 2>&1; then
  echo "pg-tls-setup: openssl is missing (apt-get install openssl)" >&2
  exit 1
fi
version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
conf_dir="/etc/postgresql/${version}/main"
if [ -z "$version" ] || [ ! -f "$conf_dir/postgresql.conf" ]; then
  echo "pg-tls-setup: no PostgreSQL cluster under /etc/postgresql/*/main" >&2
  exit 1
fi

tls_dir="$conf_dir/cqrs-tls"
mkdir -p "$tls_dir" "$out_dir"

# A certificate is kept if it exists and stays valid for at least a day.
valid() { [ -f "$1" ] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1; }

changed=0
if ! valid "$tls_dir/ca.crt" || [ ! -f "$tls_dir/ca.key" ]; then
  openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 3650 \
    -subj "/CN=cqrs test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.crt" 2>/dev/null
  chmod 600 "$tls_dir/ca.key"
  rm -f "$tls_dir/server.crt"
  changed=1
fi
if ! valid "$tls_dir/server.crt" \
  || ! openssl verify -CAfile "$tls_dir/ca.crt" "$tls_dir/server.crt" >/dev/null 2>&1; then
  openssl req -newkey rsa:2048 -sha256 -nodes -subj "/CN=localhost" \
    -keyout "$tls_dir/server.key" -out "$tls_dir/server.csr" 2>/dev/null
  ext="$(mktemp)"
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$ext"
  openssl x509 -req -sha256 -days 825 -in "$tls_dir/server.csr" \
    -CA "$tls_dir/ca.crt" -CAkey "$tls_dir/ca.key" -CAcreateserial \
    -extfile "$ext" -out "$tls_dir/server.crt" 2>/dev/null
  rm -f "$ext" "$tls_dir/server.csr"
  changed=1
fi
# The server refuses a key readable by others.
chown postgres:postgres "$tls_dir/server.key" "$tls_dir/server.crt"
chmod 600 "$tls_dir/server.key"
chmod 644 "$tls_dir/server.crt" "$tls_dir/ca.crt"

# ssl = on with this certificate, in a conf.d file (Debian's postgresql.conf includes conf.d;
# settings there win over the main file's snakeoil certificate).
conf="$conf_dir/conf.d/95-cqrs-tls.conf"
mkdir -p "$conf_dir/conf.d"
if ! grep -q "^include_dir = 'conf.d'" "$conf_dir/postgresql.conf"; then
  echo "include_dir = 'conf.d'" >>"$conf_dir/postgresql.conf"
  changed=1
fi
wanted="# Written by scripts/pg-tls-setup.sh (cqrs): TLS for the tests.
ssl = on
ssl_cert_file = '$tls_dir/server.crt'
ssl_key_file = '$tls_dir/server.key'"
if [ "$(cat "$conf" 2>/dev/null)" != "$wanted" ]; then
  printf '%s\n' "$wanted" >"$conf"
  changed=1
fi

# pg_hba: SCRAM for the channel-binding test's role over TLS, trust for everyone else over
# TLS, and the plain `host` trust line kept (or added) for plain connections.
hba="$conf_dir/pg_hba.conf"
marker="# cqrs-tls (scripts/pg-tls-setup.sh)"
if ! grep -qF "$marker" "$hba"; then
  {
    echo "$marker"
    echo "hostssl all cqrs_tls_scram 127.0.0.1/32 scram-sha-256"
    echo "hostssl all all            127.0.0.1/32 trust"
    cat "$hba"
  } >"$hba.new"
  chmod --reference="$hba" "$hba.new"
  chown --reference="$hba" "$hba.new"
  mv "$hba.new" "$hba"
  changed=1
fi
if ! grep -qE '^host[[:space:]]+all[[:space:]]+all[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
  echo "host    all all            127.0.0.1/32 trust" >>"$hba"
  changed=1
fi

# Start the cluster if it is down, else reload it when something changed (a reload applies
# ssl settings and pg_hba; connections already open keep working).
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
elif [ "$changed" = 1 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi

# The role whose password login (SCRAM over TLS) exercises channel binding.
psql -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc "
  DO \$\$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cqrs_tls_scram') THEN
      CREATE ROLE cqrs_tls_scram LOGIN PASSWORD 'cqrs-tls-scram';
    END IF;
  END \$\$;" >/dev/null

on="$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SHOW ssl")"
if [ "$on" != "on" ]; then
  echo "pg-tls-setup: the server still reports ssl = $on" >&2
  exit 1
fi
cp "$tls_dir/ca.crt" "$out_dir/ca.crt.new"
mv "$out_dir/ca.crt.new" "$out_dir/ca.crt"
echo "pg-tls-setup: PostgreSQL $version serves TLS with $tls_dir/server.crt (localhost, 127.0.0.1); CA:"
echo "$out_dir/ca.crt"
