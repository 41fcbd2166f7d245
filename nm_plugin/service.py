"""cygnet-nm-service: NetworkManager VPN plugin service (not yet available)."""
import sys


def main() -> int:
    print("cygnet-nm-service: the NetworkManager plugin is not yet available in this version", file=sys.stderr)
    return 2
