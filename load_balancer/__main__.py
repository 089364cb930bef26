"""``python -m load_balancer``: see ``load_balancer.config`` for the flags."""

from __future__ import annotations

import sys

from load_balancer.config import ConfigError, parse_config
from load_balancer.server import serve


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
    except ConfigError as exc:
        print(f"load_balancer: error: {exc}", file=sys.stderr)
        return 2
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
