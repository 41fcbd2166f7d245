"""cygnet-tray: system-tray applet (not yet available)."""
import sys


def main() -> int:
    print("cygnet-tray: the tray applet is not yet available in this version", file=sys.stderr)
    return 2
