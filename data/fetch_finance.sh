#!/usr/bin/env bash
# Reproduces data/finance.csv from the npm registry:
# @observablehq/sample-datasets@1.0.1, file package/aapl.csv (Apple daily
# prices from Yahoo Finance, ISC licence). Checks the original's checksum,
# renames the header to the seed's column names, and writes the file
# atomically. Needs npm, tar and sha256sum.
set -euo pipefail
cd "$(dirname "$0")"

pkg='@observablehq/sample-datasets@1.0.1'
want_orig='18dc8bf6542da26625d992544a619a5fc210d6dfc799e81ab7fb7f9edbc21f9a'
want_out='df6712cdf21d0ff517cd4f8e968b82029967fbe0a19a905e59f449e849c12000'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tar -xzf "$tmp"/observablehq-sample-datasets-1.0.1.tgz -C "$tmp" package/aapl.csv

got=$(sha256sum "$tmp/package/aapl.csv" | cut -d' ' -f1)
if [ "$got" != "$want_orig" ]; then
    echo "fetch_finance.sh: checksum mismatch for $pkg package/aapl.csv" >&2
    echo "  expected $want_orig" >&2
    echo "  got      $got" >&2
    exit 1
fi

header=$(head -n 1 "$tmp/package/aapl.csv")
if [ "$header" != "Date,Open,High,Low,Close,Adj Close,Volume" ]; then
    echo "fetch_finance.sh: unexpected header: $header" >&2
    exit 1
fi

{
    echo 'date,open,high,low,close,adj_close,volume'
    tail -n +2 "$tmp/package/aapl.csv"
} >"$tmp/finance.csv"

got=$(sha256sum "$tmp/finance.csv" | cut -d' ' -f1)
if [ "$got" != "$want_out" ]; then
    echo "fetch_finance.sh: checksum mismatch for the written finance.csv" >&2
    echo "  expected $want_out" >&2
    echo "  got      $got" >&2
    exit 1
fi

mv -f "$tmp/finance.csv" finance.csv.tmp.$$
mv -f finance.csv.tmp.$$ finance.csv
echo "wrote data/finance.csv ($(($(wc -l <finance.csv) - 1)) rows, sha256 $got)"
