"""Print a sha256 over the files under SOURCE's PATHS (names and contents, no bytecode).

usage: fingerprint.py SOURCE PATH...
"""

import hashlib
import os
import sys


def files(source, top):
    path = os.path.join(source, top)
    if os.path.isfile(path):
        return [top]
    found = []
    for directory, subdirs, names in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in names:
            if not name.endswith((".pyc", ".pyo")):
                found.append(os.path.relpath(os.path.join(directory, name), source))
    return sorted(found)


def main():
    source, tops = sys.argv[1], sys.argv[2:]
    digest = hashlib.sha256()
    for top in tops:
        for rel in files(source, top):
            digest.update(rel.encode() + b"\0")
            with open(os.path.join(source, rel), "rb") as handle:
                digest.update(handle.read())
            digest.update(b"\0")
    print(digest.hexdigest())


main()
