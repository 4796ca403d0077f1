#!/usr/bin/env bash
# .ci/browser-up.sh - Chromium for CCP's browser tier (idempotent; run as root; safe to re-run).
#
#   1. apt packages: chromium + a font (fonts-dejavu-core) - apt-get update + install only when missing
#   2. verify: /usr/bin/chromium --version, the playwright Python package imports, and a headless Chromium
#      renders a data: URL to a screenshot (proves the binary really runs here, not just that it exists)
#
# Never runs `playwright install` (that downloads a browser build; only package registries are reachable).
# Exit 0 when ready. Otherwise prints ONE line "BROWSER UNAVAILABLE: <reason>" and exits 3, so .ci/run can
# skip only the browser tier (export CCP_BROWSER_SKIP_REASON with that line).
set -uo pipefail

CHROMIUM=${CCP_CHROMIUM:-/usr/bin/chromium}
LOG_DIR=${CCP_CI_LOG_DIR:-/var/log/ccp-ci}
export PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export DEBIAN_FRONTEND=noninteractive
T_START=$(date +%s.%N)

log() { echo "[browser-up] $*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
unavailable() {
    if [ -n "${2:-}" ] && [ -s "$2" ]; then
        echo "---- last lines of $2 ----" >&2
        tail -n 15 "$2" >&2
        echo "----" >&2
    fi
    echo "BROWSER UNAVAILABLE: $1"
    exit 3
}

[ "$(id -u)" = 0 ] || unavailable "must run as root (uid $(id -u)): it installs packages"
mkdir -p "$LOG_DIR"

PKGS=(chromium fonts-dejavu-core)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    timeout 300 apt-get update -qq >"$LOG_DIR/apt-browser.log" 2>&1 || log "apt-get update failed (continuing)"
    if ! timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG_DIR/apt-browser.log" 2>&1; then
        unavailable "apt-get install ${missing[*]} failed: $(grep -E '^E:' "$LOG_DIR/apt-browser.log" | tail -n 1)" "$LOG_DIR/apt-browser.log"
    fi
else
    log "packages present: ${PKGS[*]}"
fi
log "packages ready in $(elapsed "$T_START")s"

[ -x "$CHROMIUM" ] || unavailable "$CHROMIUM not found after installing chromium"
version=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --version 2>&1) || unavailable "$CHROMIUM --version failed: $version"
log "$version"

python3 -c 'import playwright.sync_api' 2>"$LOG_DIR/playwright-import.log" \
    || unavailable "python package playwright not importable (pip install -e '.[test]'): $(tail -n 1 "$LOG_DIR/playwright-import.log")"

# A real headless render through Playwright with the same flags as tests/browser/conftest.py.
shot=$(mktemp --suffix=.png)
if ! out=$(timeout 90 python3 - "$CHROMIUM" "$shot" 2>&1 <<'EOF'
import sys
from playwright.sync_api import sync_playwright

exe, shot = sys.argv[1], sys.argv[2]
args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=exe, args=args, headless=True, timeout=60000)
    page = browser.new_page()
    page.set_content("<button id=b onclick=\"this.textContent='clicked'\">click</button>")
    page.click("#b")
    assert page.text_content("#b") == "clicked", page.content()
    page.screenshot(path=shot)
    print("playwright ok, browser", browser.version)
    browser.close()
EOF
); then
    rm -f "$shot"
    unavailable "headless Chromium via Playwright failed: $(echo "$out" | grep -v '^\s*$' | tail -n 1)"
fi
[ -s "$shot" ] || unavailable "headless Chromium produced no screenshot"
rm -f "$shot"
log "$out"
log "ready in $(elapsed "$T_START")s"
exit 0
