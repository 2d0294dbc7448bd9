"""What the schema fuzzing reached, per operation, from its HAR recording.

Usage: fuzz_coverage.py OPENAPI_JSON HAR_JSON

Prints one line per operation of the document: how many requests schemathesis sent and the
statuses they got. Exits 1 when an operation got no request at all, or only ever answered 404
(and 401, which says nothing of the operation): such an operation was never exercised past
"not found" (the fuzzer lacked a real id), so a defect behind it (a 500 on valid data, a NUL
stored) would go unseen.
"""

import collections
import json
import re
import sys
from urllib.parse import urlparse


def routes(document):
    """(method, compiled path pattern, operation id) for every operation, longest literal first."""
    found = []
    for path, operations in document["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        for method, operation in operations.items():
            found.append((literal, method.upper(), pattern, operation["operationId"]))
    # A literal segment beats a parameter (`/scan/members` before `/members/{account}`).
    found.sort(key=lambda r: -r[0])
    return [(m, p, o) for _, m, p, o in found]


def main():
    document = json.load(open(sys.argv[1]))
    har = json.load(open(sys.argv[2]))
    table = routes(document)
    statuses = {operation: collections.Counter() for _, _, operation in table}
    for entry in har["log"]["entries"]:
        method = entry["request"]["method"]
        path = urlparse(entry["request"]["url"]).path
        for m, pattern, operation in table:
            if m == method and pattern.match(path):
                statuses[operation][entry["response"]["status"]] += 1
                break
    unreached = []
    width = max(len(o) for o in statuses)
    print(f"{'operation':<{width}}  requests  statuses")
    for operation in sorted(statuses):
        seen = statuses[operation]
        total = sum(seen.values())
        spread = ", ".join(f"{s}: {n}" for s, n in sorted(seen.items()))
        only_404 = total > 0 and set(seen) <= {401, 404}
        mark = "  <- never past 404" if only_404 else ("  <- never called" if total == 0 else "")
        print(f"{operation:<{width}}  {total:>8}  {spread}{mark}")
        if total == 0 or only_404:
            unreached.append(operation)
    reached = len(statuses) - len(unreached)
    print(f"fuzz coverage: {reached} of {len(statuses)} operations reached past 404")
    if unreached:
        print("not reached: " + ", ".join(unreached))
        sys.exit(1)


if __name__ == "__main__":
    main()
