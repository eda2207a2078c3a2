"""Build a bundle's int8 network cache entries into a folder, for the packaged app.

The app keeps each bundle's static int8 network in the user's cache folder after building it
once (``octviewer/core/model/int8_cache.py``): about 5 s of a 2-core CPU at a new user's first
start. Entries written here into ``resources/models/int8`` ship with the app and are read from
there (read-only, checked like the user's), so that the first start loads them instead.
One entry per activation width: 8-bit (CPUs with VNNI) and 7-bit (the others); each is keyed by
the bundle's SHA-256 and this torch's version, so build with the torch the app ships.

Usage: python scripts/build_int8_cache.py resources/models/octviewer-demo-kermany.safetensors \\
           [--out resources/models/int8] [--bits 8 7]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("build_int8_cache")
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "models" / "int8")
    ap.add_argument("--bits", type=int, nargs="+", choices=(7, 8), default=[8, 7])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from octviewer.core.model.architectures import get_submodule
    from octviewer.core.model.bundle import read_bundle_head
    from octviewer.core.model.int8_static import load_int8
    from octviewer.core.model.network import store_cached

    head = read_bundle_head(args.bundle)
    target = head.config.cam_target_layer

    def cam_target_of(model: object) -> str:
        get_submodule(model, target)
        return target

    for bits in args.bits:
        loaded, hook = load_int8(
            args.bundle, "cpu", head.config, cam_target_of, head, reduce_range=bits == 7
        )
        if hook.kind != "static" or store_cached(head, loaded, hook, args.out) is None:
            log.error("%s: no static int8 network to cache (%s)", args.bundle.name, hook.kind)
            return 1
        log.info("%d-bit entry written to %s", bits, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
