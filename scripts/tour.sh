#!/usr/bin/env bash
# A short tour of hoist on a temporary embedded store: builds the binary, then runs the real
# commands a team would — deploy, config, secrets, promote, rollback, lock, audit, verify, check.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
hoist() { echo; echo "\$ hoist $*"; ./target/release/hoist "$@"; }

export HOIST_STORE HOIST_SECRET_KEY_FILE HOIST_ACTOR=ana@example.com
HOIST_STORE=$(mktemp -d)/store
HOIST_SECRET_KEY_FILE=$(dirname "$HOIST_STORE")/secret.key
trap 'rm -rf "$(dirname "$HOIST_STORE")"' EXIT

v1=registry.example/api@sha256:$(printf '1%.0s' {1..64})
v2=registry.example/api@sha256:$(printf '2%.0s' {1..64})

hoist apps create api --envs staging,production
hoist envs target api --env production --manifests "$(dirname "$HOIST_STORE")/gitops"
hoist builds register api --image "$v1" --commit 9fceb02 --note "first cut"
hoist deploy api --env staging --image "$v1"
hoist config set api --env staging DATABASE_URL=postgres://db.internal/api LOG_LEVEL=info
hoist config set api --env staging --secret STRIPE_KEY=sk_live_example
hoist config get api --env staging
hoist promote api --from staging
hoist deploy api --env staging --image "$v2"
hoist promote api --from staging
hoist apply api --env production
hoist status api
hoist rollback api --env production
hoist releases api --env production
hoist diff api --env production 2 3
hoist lock api --env production --reason "Black Friday freeze" --actor ops@example.com
echo; echo "\$ hoist deploy api --env production --image $v2    # rejected while locked"
./target/release/hoist deploy api --env production --image "$v2" || echo "(exit $?)"
hoist rollback api --env production --to v2
hoist apply api --env production
hoist audit --app api --limit 6
hoist audit verify
hoist admin rebuild
hoist admin check
