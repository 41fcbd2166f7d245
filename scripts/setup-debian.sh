#!/usr/bin/env bash
# Debian packages Cygnet's demo and tests need. Idempotent; run as root on Debian 12.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "setup-debian.sh: run as root (it installs Debian packages)" >&2; exit 1; fi
packages=(
  python3-venv iproute2 iputils-ping nftables tcpdump iperf3 procps psmisc util-linux
  strongswan-charon strongswan-swanctl strongswan-pki
  # the openssl plugin (pki --gen, charon's crypto) and eap-mschapv2 are only Recommends of
  # libstrongswan / charon, which --no-install-recommends skips
  libstrongswan-standard-plugins libcharon-extauth-plugins
  libcharon-extra-plugins libstrongswan-extra-plugins
  # tray applet (gui/): Qt's xcb platform, a virtual X server with a tray host for screenshots,
  # a Secret Service (gnome-keyring) and a notification server (dunst) for its tests
  xvfb xauth trayer libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-shape0 libxcb-xkb1 libxcb-randr0 libxcb-xinerama0 libxkbcommon-x11-0 libegl1 libgl1
  libfontconfig1 fonts-dejavu-core gnome-keyring libsecret-tools dbus-x11 dunst
  # NetworkManager plugin tests (tests/nm): a real NetworkManager and its own system bus in
  # namespaces, and strongSwan's plugin (charon-nm) side by side
  network-manager network-manager-strongswan strongswan-nm dbus-daemon
  # kernel data plane VM lane (scripts/vm/run_in_vm.py, tests/test_kernel_lane.py): qemu/TCG
  # booting Debian's kernel (kernel ESP) with a busybox initramfs; openssl + NSS tools and
  # libreswan's libraries for the libreswan gateway (libreswan itself conflicts with strongSwan:
  # the lane unpacks its .deb with apt-get download + dpkg-deb -x, for the VM only)
  qemu-system-x86 linux-image-amd64 busybox-static openssl libnss3-tools
  libunbound8 libldns3 libevent-core-2.1-7 libevent-pthreads-2.1-7 libcurl3-nss libcap-ng0
  dns-root-data bind9-host iptables
  # the fresh-root CI lane (scripts/check-fresh-machine.sh): a minimal Debian 12 root
  mmdebstrap
  # enterprise EAP tests (testbed/freeradius.py): a RADIUS server behind the gateway's
  # eap-radius plugin, run by the tests in the LAN namespace with its own configuration;
  # hostapd's RADIUS server as a second one (PEAP cryptobinding, testbed/hostapd_radius.py)
  freeradius hostapd
  # smartcard tests (testbed/softhsm.py): a PKCS#11 token in a test-owned directory
  softhsm2
)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

# The tests run their own charon, NetworkManager and dbus-daemon, isolated in namespaces. While
# we install, keep package scripts from starting the system's copies (policy-rc.d, only for the
# duration of the install, and only if the machine has none of its own).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Services that this install brought in are left disabled (they were not running before); a
# machine's own NetworkManager or strongSwan, installed earlier, is not touched.
for p in "${missing[@]}"; do
  case "$p" in
    strongswan-charon) systemctl disable strongswan-starter strongswan 2>/dev/null || true ;;
    network-manager) systemctl disable NetworkManager 2>/dev/null || true ;;
    freeradius) systemctl disable freeradius 2>/dev/null || true ;;
    hostapd) systemctl disable hostapd 2>/dev/null || true ;;
  esac
done
