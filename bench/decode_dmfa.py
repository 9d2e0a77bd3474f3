"""CPU of decoding one signed, XSD-valid DmfA into the domain model (issue 4), against the floor.

    python bench/decode_dmfa.py [--workers 1000] [--repeat 10]

One DmfA of ``--workers`` workers from bench/batch.py's generator (sender 2001, EC P-256). Best of
``--repeat`` runs (the machine is shared), each part timed alone:
- **floor**: lxml parse + XSD validation of the signed bytes (what issue 4 compares with);
- **decode**: ``decoding.decode`` of verify's signed tree, a fresh tree each run (parsed again
  from its bytes, untimed), then the same tree again (warm);
- **examine**: ``services.examine.examine`` of the bytes: parse, signature, XSD, decode,
  identifiers (the part of the pipeline before the rules and the store).
Run it from another checkout (e.g. a worktree of main) to compare decoders: it imports the
package of the checkout it sits in.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402

from batch import dmfa_items, signer_2001  # noqa: E402
from declarations.services.examine import examine  # noqa: E402
from declarations.xmlio import decoding, parsing, schemas  # noqa: E402
from declarations.xmlio.signature import verify  # noqa: E402


def best(repeat: int, prepare, run) -> float:
    times = []
    for _ in range(repeat):
        argument = prepare()
        start = time.perf_counter()
        run(argument)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    data = etree.tostring(next(dmfa_items(signer_2001(), args.workers, args.workers)))
    signed = etree.tostring(verify(parsing.parse(data)).signed)
    elements = sum(1 for _ in parsing.parse(signed).iter())
    # warm-up: compiled schemas, stylesheets, caches
    for _ in range(2):
        decoding.decode(parsing.parse(signed))
        examine(data, max_bytes=1 << 30)
    floor = best(args.repeat, lambda: None, lambda _: schemas.problems(parsing.parse(data)))
    fresh = best(args.repeat, lambda: parsing.parse(signed), decoding.decode)
    tree = parsing.parse(signed)
    warm = best(args.repeat, lambda: tree, decoding.decode)
    examined = best(args.repeat, lambda: None, lambda _: examine(data, max_bytes=1 << 30))
    print(f"checkout {REPO}; {args.workers} workers, {elements} elements, {len(data):,} bytes; best of {args.repeat}")
    print("| floor: parse + XSD (ms) | decode, fresh tree (ms) | decode, same tree (ms) | examine (ms) "
          "| decode / floor |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {floor:.2f} | {fresh:.2f} | {warm:.2f} | {examined:.2f} | {fresh / floor:.2f} |")


if __name__ == "__main__":
    main()
