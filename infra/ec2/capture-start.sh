#!/bin/bash
# ExecStart of walbridge-capture.service, installed as
# /opt/walbridge/bin/capture-start next to the capture binary:
#   capture-start [COMMAND [FLAGS]]   (default: run)
#
# Fetches the database user and password from Secrets Manager at every start
# (so a rotated password is picked up by the next restart), refuses to start
# without verified TLS to the database (sslmode=verify-full against the RDS CA
# bundle), and execs capture with the credentials in its environment only:
# never on disk, never in argv.
set -euo pipefail

die() {
	echo "capture-start: $*" >&2
	exit 78 # EX_CONFIG
}

[ -n "$WALBRIDGE_DB_SECRET_ARN" ] || die "WALBRIDGE_DB_SECRET_ARN is empty"
[ -n "$AWS_REGION" ] || die "AWS_REGION is empty"
# DATABASE_URL names the server only; the user and password reach capture as
# PGUSER and PGPASSWORD, which pgx uses when the URL has none.
case "$DATABASE_URL" in
*@*) die "DATABASE_URL must not carry credentials: they come from the secret" ;;
postgres://*'?'*sslmode=verify-full* | postgresql://*'?'*sslmode=verify-full*) ;;
*) die "DATABASE_URL must be a postgres:// URL with sslmode=verify-full" ;;
esac
rootcert=$(printf '%s\n' "$DATABASE_URL" | sed -n 's/.*[?&]sslrootcert=\([^&]*\).*/\1/p')
[ -n "$rootcert" ] && [ -s "$rootcert" ] || die "DATABASE_URL's sslrootcert '$rootcert' is missing or empty"

# secret_string ARN prints the secret's SecretString.
secret_string() {
	aws secretsmanager get-secret-value \
		--region "$AWS_REGION" \
		--secret-id "$1" \
		--query SecretString \
		--output text
}

secret=$(secret_string "$WALBRIDGE_DB_SECRET_ARN")

field() {
	printf '%s' "$secret" | python3 -c '
import json, sys
value = json.load(sys.stdin).get(sys.argv[1])
if not isinstance(value, str) or not value:
    sys.exit("secret has no string field %r" % sys.argv[1])
sys.stdout.write(value)
' "$1"
}

PGUSER=$(field username)
PGPASSWORD=$(field password)
unset secret
export PGUSER PGPASSWORD

# The column policy's hash key, when the stack names a secret for it: its
# SecretString is the key. Like the password, it reaches capture only
# through its environment.
hash_secret=$(printenv WALBRIDGE_HASH_KEY_SECRET || true)
if [ -n "$hash_secret" ]; then
	WALBRIDGE_HASH_KEY=$(secret_string "$hash_secret")
	[ -n "$WALBRIDGE_HASH_KEY" ] || die "the secret $hash_secret (WALBRIDGE_HASH_KEY_SECRET) is empty"
	export WALBRIDGE_HASH_KEY
fi

# No arguments (the service): capture run. Operators pass another command,
# e.g. capture-start status, or capture-start teardown --yes.
if [ $# -eq 0 ]; then
	set -- run
fi
exec "$(dirname "$(readlink -f "$0")")/capture" "$@"
