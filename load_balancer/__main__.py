"""``python -m load_balancer``: see ``load_balancer.config`` for the flags."""

from __future__ import annotations

import sys

from load_balancer.config import ConfigError, parse_config
from load_balancer.server import serve
from load_balancer.tls import TlsError


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        serve(config)
    except (ConfigError, TlsError) as exc:
        print(f"load_balancer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
