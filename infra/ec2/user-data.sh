#!/bin/bash
# walbridge capture: EC2 user data (runs once, as root, at first boot).
#
# infra/template.yaml inlines this file verbatim in an Fn::Sub, and a test
# keeps the two identical. So:
#   - A dollar sign followed by a braced Name is a CloudFormation
#     placeholder, filled from the Fn::Sub variable map at deploy time. Run
#     by hand, or by the tests, the same text is an ordinary shell variable
#     read from the environment (and set -u insists that it is set).
#   - Every other shell expansion is written $name, without braces, which
#     Fn::Sub leaves alone.
#   - WALBRIDGE_ROOT (default /) prefixes every path this script writes, so
#     that the tests can run it in a scratch directory.
#
# It installs the capture binary, the RDS CA bundle, the service's
# configuration (no secrets in it: capture-start fetches the database
# credentials from Secrets Manager when the service starts), the wrapper and
# the systemd unit, then starts walbridge-capture.service.
set -euo pipefail
umask 022

root=$(printenv WALBRIDGE_ROOT || true)

case "${DbPort}" in
'' | *[!0-9]*)
	echo "user-data: DbPort '${DbPort}' is not a port number" >&2
	exit 1
	;;
esac

retry() {
	local n=1
	until "$@"; do
		if [ "$n" -ge 5 ]; then
			echo "user-data: giving up after $n attempts: $*" >&2
			return 1
		fi
		sleep $((n * 3))
		n=$((n + 1))
	done
}

# fetch URL DEST: s3:// through the instance role, https:// with curl.
fetch() {
	case "$1" in
	s3://*) retry aws s3 cp --only-show-errors --region "${Region}" "$1" "$2" ;;
	https://*) retry curl -fsSL --proto '=https' --tlsv1.2 -o "$2" "$1" ;;
	*)
		echo "user-data: will only fetch s3:// or https:// URLs, not $1" >&2
		return 1
		;;
	esac
}

# fetch_capture SOURCE DEST: the capture binary, from S3 (ArtifactKey) or
# from the layer the stack packaged (layer:ARN): a zip holding "capture",
# downloaded from the pre-signed URL GetLayerVersionByArn gives.
fetch_capture() {
	case "$1" in
	layer:*)
		local arn url
		arn=$(printf '%s\n' "$1" | sed 's/^layer://')
		url=$(retry aws lambda get-layer-version-by-arn --region "${Region}" --arn "$arn" --query Content.Location --output text) || return 1
		fetch "$url" "$2.zip" || return 1
		python3 -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("capture"))' "$2.zip" "$2"
		rm -f "$2.zip"
		;;
	*) fetch "$1" "$2" ;;
	esac
}

bin_dir=$root/opt/walbridge/bin
conf_dir=$root/etc/walbridge
unit_dir=$root/etc/systemd/system
install -d -m 0755 "$bin_dir" "$conf_dir" "$unit_dir"

fetch_capture "${ArtifactUrl}" "$bin_dir/capture.download"
chmod 0755 "$bin_dir/capture.download"
mv -f "$bin_dir/capture.download" "$bin_dir/capture"

fetch "${RdsCaBundleUrl}" "$conf_dir/rds-ca.pem.download"
grep -q 'BEGIN CERTIFICATE' "$conf_dir/rds-ca.pem.download" || {
	echo "user-data: ${RdsCaBundleUrl} is not a PEM bundle" >&2
	exit 1
}
chmod 0644 "$conf_dir/rds-ca.pem.download"
mv -f "$conf_dir/rds-ca.pem.download" "$conf_dir/rds-ca.pem"

# The column policy (optional): capture reads it at start and on SIGHUP.
policy=
if [ "${PolicyUrl}" != none ]; then
	fetch "${PolicyUrl}" "$conf_dir/policy.yaml.download"
	chmod 0644 "$conf_dir/policy.yaml.download"
	mv -f "$conf_dir/policy.yaml.download" "$conf_dir/policy.yaml"
	policy=/etc/walbridge/policy.yaml
fi
# capture setup's --keyless (refuse: stop and say which tables have no key).
keyless=${KeylessTables}
if [ "$keyless" = refuse ]; then
	keyless=
fi
hash_key_secret=${HashKeySecretArn}
if [ "$hash_key_secret" = none ]; then
	hash_key_secret=
fi
# The claim check's bucket (none: large values are omitted).
claim_check_bucket=${ClaimCheckBucketName}
if [ "$claim_check_bucket" = none ]; then
	claim_check_bucket=
fi

# Configuration only: the password never touches the disk. systemd reads this
# file as root before it starts the service, so it can be 0600.
(
	umask 077
	cat >"$conf_dir/capture.env.tmp" <<ENV
WALBRIDGE_STREAM=${StreamName}
WALBRIDGE_SLOT=${SlotName}
WALBRIDGE_PUBLICATION=${PublicationName}
WALBRIDGE_METRICS_ADDR=127.0.0.1:9187
WALBRIDGE_CLOUDWATCH=true
WALBRIDGE_DB_SECRET_ARN=${DbSecretArn}
WALBRIDGE_POLICY=$policy
WALBRIDGE_HASH_KEY_SECRET=$hash_key_secret
WALBRIDGE_KEYLESS=$keyless
WALBRIDGE_RECORD_FORMAT=${RecordFormat}
WALBRIDGE_CLAIM_CHECK_BUCKET=$claim_check_bucket
AWS_REGION=${Region}
DATABASE_URL=postgres://${DbHost}:${DbPort}/${DbName}?sslmode=verify-full&sslrootcert=/etc/walbridge/rds-ca.pem
ENV
)
chmod 0600 "$conf_dir/capture.env.tmp"
mv -f "$conf_dir/capture.env.tmp" "$conf_dir/capture.env"

# infra/ec2/capture-start.sh
cat >"$bin_dir/capture-start" <<'CAPTURE_START'
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
CAPTURE_START
chmod 0755 "$bin_dir/capture-start"

# infra/ec2/walbridge-capture.service
cat >"$unit_dir/walbridge-capture.service" <<'UNIT'
# walbridge capture: streams PostgreSQL logical replication (pgoutput) to Kinesis.
# Installed by infra/ec2/user-data.sh; configuration (no secrets) is in
# /etc/walbridge/capture.env, and capture-start fetches the database
# credentials from Secrets Manager each time the service starts.
[Unit]
Description=walbridge capture (PostgreSQL logical replication to Kinesis)
Documentation=https://github.com/walbridge/walbridge/tree/main/infra
Wants=network-online.target
After=network-online.target
# Never stop trying: while nobody reads the replication slot, the database
# keeps every WAL segment since the slot's confirmed position.
StartLimitIntervalSec=0

[Service]
Type=exec
EnvironmentFile=/etc/walbridge/capture.env
# capture setup first, every start: it creates what is missing (publication,
# slot, walbridge schema) and otherwise only checks. A refusal (keyless
# tables, wal_level, a missing right) fails the start, with its reason in
# the journal and the SetupRefused metric (alarm STACK-capture-setup-refused).
ExecStartPre=/opt/walbridge/bin/capture-start setup
ExecStart=/opt/walbridge/bin/capture-start
# systemctl reload: capture re-reads its column policy (a broken file is
# refused and the running policy stays).
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=5s
# On SIGTERM capture drains in-flight records to Kinesis and confirms the
# position within 30s; give it twice that before SIGKILL.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=60s
DynamicUser=yes
StateDirectory=walbridge-capture
Environment=HOME=/var/lib/walbridge-capture
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$unit_dir/walbridge-capture.service"

systemctl daemon-reload
systemctl enable --now walbridge-capture.service
