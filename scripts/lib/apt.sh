# Sourced by the install scripts: Debian packages installed only where missing, so a second run
# does nothing and needs no network. Root runs apt-get itself; anyone else through `sudo -n`.

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

# apt_install_missing TAG PACKAGE...: installs the PACKAGEs dpkg does not list as installed.
apt_install_missing() {
  local tag="$1" pkg missing=()
  shift
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  printf '%s: installing %s\n' "$tag" "${missing[*]}" >&2
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
