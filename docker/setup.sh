#!/bin/sh
# maillage-docker-setup: the one-shot service of docker-compose.yml. Makes
# the CURVE certificates (the broker's and each agency's) once, in
# /etc/maillage/certs, and writes the configurations that name them:
# /etc/maillage/maillage.cfg (the broker's) and one per adapter. Existing
# certificates are kept, so running it again changes no key.
set -eu
out=/etc/maillage
mkdir -p "$out/certs"
for name in broker cd75 ccas-paris-13 ehpad-les-tilleuls ars-idf; do
  [ -f "$out/certs/${name}_secret" ] || maillage keygen "$name" "$out/certs" >/dev/null
done
key() { sed -n 's/^ *public-key = "\(.*\)"/\1/p' "$out/certs/$1"; }

cat >"$out/maillage.cfg" <<CFG
broker
    endpoint = tcp://*:5670
    database = ${MAILLAGE_DATABASE}
    schemas = /opt/maillage/share/maillage/schemas
    http = 0.0.0.0:9670
security
    curve = 1
    secret_cert = certs/broker_secret
agencies
    cd75
        name = "Département de Paris"
        public_key = "$(key cd75)"
        publish = "referral.*, info.*, situation.shared, child.protection.alert, consent.*"
    ccas-paris-13
        name = "CCAS de Paris 13e"
        public_key = "$(key ccas-paris-13)"
        publish = "referral.*, info.*, situation.shared, resources.shared, child.protection.alert, consent.*"
    ehpad-les-tilleuls
        name = "EHPAD Les Tilleuls"
        public_key = "$(key ehpad-les-tilleuls)"
        publish = "referral.*, service.*, health.summary.shared, consent.*"
        subscribe = "service.*"
    ars-idf
        name = "ARS Île-de-France"
        public_key = "$(key ars-idf)"
        subscribe = "service.*"
CFG

cat >"$out/adapter-files.cfg" <<CFG
adapter
    agency = ehpad-les-tilleuls
    endpoint = tcp://broker:5670
    client = "files@ehpad-les-tilleuls"
    cert = certs/ehpad-les-tilleuls_secret
    server_key = "$(key broker)"
plugin
    dir = /var/lib/maillage/drop
CFG

cat >"$out/adapter-sql.cfg" <<CFG
adapter
    agency = ccas-paris-13
    endpoint = tcp://broker:5670
    client = "sql@ccas-paris-13"
    cert = certs/ccas-paris-13_secret
    server_key = "$(key broker)"
plugin
    database = "${MAILLAGE_LEGACY_DATABASE}"
    outbox
        table = maillage_outbox
    inbox
        table = maillage_inbox
CFG
# the services run as the image's maillage user
chown -R maillage:maillage "$out"
chmod 0600 "$out"/certs/*_secret
echo "maillage-docker-setup: certificates and configurations in $out"
