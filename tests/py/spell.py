"""prometheus_client's spelling of many doubles, for the Rust test that compares ours.

  spell.py IN OUT    IN holds doubles as 8-byte words in native byte order; OUT gets
                     floatToGoString of each, one per line, in the same order.

One process spells them all (about a second per million), so the Rust side can compare
a million values without calling Python per value. Run inside the pinned virtualenv
(see tests/it/util.rs).
"""

import array
import sys

from prometheus_client.utils import floatToGoString


def main():
    values = array.array("d")
    with open(sys.argv[1], "rb") as f:
        values.frombytes(f.read())
    with open(sys.argv[2], "w", encoding="ascii", newline="\n") as f:
        f.write("\n".join(map(floatToGoString, values)))
        f.write("\n")


if __name__ == "__main__":
    main()
