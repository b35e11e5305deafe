#!/usr/bin/env bash
# Installs what the end-to-end tests need, offline-safe and idempotent (a second run does nothing):
#   - Debian packages: chromium (driven by playwright-core), openssh-server (SSH tests),
#     libkrb5-dev plus a C++ toolchain (code-server's native modules build from source);
#   - code-server 4.100.3 (VS Code 1.100.3) from npm into a cache folder, never into
#     package.json: it is 300 MB and needs the environment below to install at all.
# Cache folder: $STEELSCOPE_E2E_DIR, default $HOME/.cache/steelscope-e2e/code-server; the binary
# ends up at <dir>/node_modules/.bin/code-server, and <dir>/.installed holds the version once the
# server has answered /healthz (test/e2e/harness.ts checks the same marker).
# Facts behind each step: /work/shared/notes/real-vscode-and-ssh-tests.md.
set -euo pipefail

CS_VERSION=4.100.3
# The rg binary that @vscode/ripgrep would download from GitHub; the npm registry has it too.
RG_PACKAGE=@vscode/ripgrep-linux-x64@1.18.0
DIR="${STEELSCOPE_E2E_DIR:-$HOME/.cache/steelscope-e2e/code-server}"
MARKER="$DIR/.installed"
BIN="$DIR/node_modules/.bin/code-server"

log() { printf 'install-e2e: %s\n' "$*" >&2; }

install_debian_packages() {
  local wanted=(chromium fonts-wqy-zenhei openssh-server libkrb5-dev g++ make python3) missing=() pkg
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "Debian packages present"
    return
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "need root (or sudo) to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "apt-get install ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  local out
  out="$(mktemp)"
  # dpkg's progress is noise in CI logs; shown only when the install fails.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$out" 2>&1 ||
    { cat "$out" >&2; exit 1; }
  rm -f "$out"
}

# @vscode/ripgrep's postinstall looks for its download in $TMPDIR first; put the tarball there.
seed_ripgrep() {
  local rgdir="$1/rg-package" cache="$1/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$rgdir" "$cache"
  (cd "$rgdir" && npm pack --silent "$RG_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  tar czf "$cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$rgdir/package/bin" rg
}

install_code_server() {
  local tmp
  tmp="$(mktemp -d)"
  # A half-finished install from an interrupted run is not reused.
  rm -rf "$DIR"
  mkdir -p "$DIR"
  seed_ripgrep "$tmp"
  log "npm install code-server@$CS_VERSION into $DIR (1-2 min)"
  # unsafe_perm: the postinstall refuses root without it (npm 11 ignores the flag, reads the env).
  # yes: node-pty's postinstall runs `npx node-gyp`, which would otherwise ask.
  # dangerously_allow_all_scripts: npm 11 skips dependency install scripts unless allowed, and
  # code-server's postinstall runs two nested project installs (lib/vscode, its extensions) that
  # need their own native builds; an allow-list cannot reach those nested installs, the env can.
  # A project install in the cache folder (its package.json and lock stay there), not
  # `--global --prefix`: npm hands npm_config_global=true to install scripts, and the nested
  # installs would then install lib/vscode globally and break.
  printf '{ "name": "steelscope-e2e-code-server", "private": true }\n' >"$DIR/package.json"
  (cd "$DIR" && TMPDIR="$tmp" npm_config_unsafe_perm=true npm_config_yes=true \
    npm_config_dangerously_allow_all_scripts=true npm_config_fund=false npm_config_audit=false \
    npm_config_update_notifier=false npm install "code-server@$CS_VERSION")
  rm -rf "$tmp"
}

# The install counts only once the server has answered /healthz.
verify_code_server() {
  local tmp port pid ok=0 i
  tmp="$(mktemp -d)"
  port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
  printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$port" >"$tmp/config.yaml"
  XDG_CONFIG_HOME="$tmp/xdg-config" XDG_DATA_HOME="$tmp/xdg-data" XDG_CACHE_HOME="$tmp/xdg-cache" TMPDIR="$tmp" \
    setsid "$BIN" --config "$tmp/config.yaml" --user-data-dir "$tmp/ud" --extensions-dir "$tmp/ext" \
    --disable-telemetry --disable-update-check >"$tmp/server.log" 2>&1 &
  pid=$!
  for i in $(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  # setsid made it a process group of its own: stop the server and its children together.
  kill -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ok" != 1 ]; then
    log "code-server did not answer /healthz; its log:"
    cat "$tmp/server.log" >&2
    exit 1
  fi
  rm -rf "$tmp"
  log "code-server $CS_VERSION answers /healthz"
}

install_debian_packages
if [ -x "$BIN" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$CS_VERSION" ]; then
  log "code-server $CS_VERSION already installed in $DIR"
  exit 0
fi
install_code_server
verify_code_server
echo "$CS_VERSION" >"$MARKER"
log "done: $BIN"
