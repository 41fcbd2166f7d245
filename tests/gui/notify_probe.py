"""Send the applet's notifications (gui.notify.Notifier) on the session bus; print how each went.

    python -m tests.gui.notify_probe SUMMARY BODY [--urgent]   -> {"via": "notifications"}
"""

from __future__ import annotations

import argparse
import asyncio
import json

from gui.notify import Notifier


async def main(args) -> dict:
    notifier = Notifier(tray=None)
    await notifier.start()
    notice = await notifier.notify(args.summary, args.body, urgent=args.urgent)
    notifier.close()
    return {"via": notice.via}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("summary")
    parser.add_argument("body")
    parser.add_argument("--urgent", action="store_true")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
