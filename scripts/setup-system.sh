#!/usr/bin/env bash
# Install (as root) or check (as anyone else) the Debian packages queuehall needs.
#
#   scripts/setup-system.sh           root: install what is missing; others: check only
#   scripts/setup-system.sh --check   never install, only check
#
# Exit status: 0 when every package is present (or was just installed), 1 when something is
# missing and could not be installed, 2 on bad usage. Why each package is needed: docs/stack.md.
set -euo pipefail

PACKAGES=(
  # CJK glyphs for Qt and for rendered tickets (without it Chinese shows as tofu boxes).
  fonts-wqy-microhei
  # QtMultimedia / QtTextToSpeech (PySide6-Addons) link against libpulse.so.0.
  libpulse0
  # Offline Mandarin/English announcements (espeak-ng -v cmn-latn-pinyin) and WAV post-processing.
  espeak-ng
  sox
  # PostgreSQL 15 server (Debian 12's default), used by scripts/pg.sh for the postgres test backend.
  postgresql
  # What libQt6Gui and the offscreen platform plugin link against (ldd of the PySide6 6.11.3 wheel;
  # libqoffscreen.so itself needs libX11, libGL and libxkbcommon, and libX11 needs libxcb).
  libegl1
  libgl1
  libxkbcommon0
  libfontconfig1
  libfreetype6
  libdbus-1-3
  libglib2.0-0
  libx11-6
  libxcb1
  # The xcb platform (`make demo` on a real X display, and its test under Xvfb): libqxcb.so and
  # libQt6XcbQpa.so.6 link against these (ldd of the PySide6 6.11.3 wheel).
  libx11-xcb1
  libxcb-cursor0
  libxcb-icccm4
  libxcb-image0
  libxcb-keysyms1
  libxcb-randr0
  libxcb-render-util0
  libxcb-render0
  libxcb-shape0
  libxcb-shm0
  libxcb-sync1
  libxcb-util1
  libxcb-xfixes0
  libxcb-xkb1
  libxkbcommon-x11-0
  # The interactive demo's test (tests/test_demo_x11.py): an X server with no screen (Xvfb), xwininfo
  # (x11-utils) to see every window, xwd (x11-apps) for the screenshot, xdotool to lay the windows out.
  xvfb
  x11-utils
  x11-apps
  xdotool
  # python-escpos Usb printers (pyusb needs a libusb backend).
  libusb-1.0-0
  # The web gateway's ticket page tested in a real browser: headless Chromium driven by Playwright
  # (executable_path=/usr/bin/chromium; never a downloaded browser), chromium-driver for Selenium.
  chromium
  chromium-driver
)

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
  *) echo "setup-system.sh: unknown argument '$1' (use --check or no argument)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  # Not Debian-based: we cannot check, so say what is needed and let the tests show what breaks.
  echo "setup-system.sh: no dpkg-query (not a Debian system); install the equivalents of: ${PACKAGES[*]}" >&2
  exit 0
fi

# Print the packages from PACKAGES that are not fully installed, one per line.
missing_packages() {
  local installed
  # One dpkg-query call for all packages keeps the already-installed case fast; unknown names go to stderr.
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${PACKAGES[@]}" 2>/dev/null \
    | awk '$2 == "ii" { print $1 }' || true)
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    grep -qxF -- "$pkg" <<<"$installed" || echo "$pkg"
  done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

apt_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$check_only" -eq 1 ] || [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh: missing Debian packages: ${missing[*]}. Install them as root with:" \
    "sudo apt-get update && sudo $apt_cmd" >&2
  exit 1
fi

echo "setup-system.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrent apt/dpkg run instead of failing on its lock.
apt-get -o DPkg::Lock::Timeout=300 update -q
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"

mapfile -t still_missing < <(missing_packages)
if [ "${#still_missing[@]}" -ne 0 ]; then
  echo "setup-system.sh: still missing after apt-get install: ${still_missing[*]}" >&2
  exit 1
fi
