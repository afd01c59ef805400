"""Checks a TechEmpower database server (bench/run_db.sh's tfb figures)
before it is timed: /db, /queries with good and bad counts, /fortunes with
the added fortune and the escaped script tag.

    /usr/bin/python3 tfb_check.py http://127.0.0.1:PORT
"""
import json
import sys
import urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def main():
    base = sys.argv[1]
    row = json.loads(get(base + "/db"))
    assert set(row) == {"id", "randomNumber"} and 1 <= row["id"] <= 10000, row
    rows = json.loads(get(base + "/queries?queries=20"))
    assert len(rows) == 20 and all(set(r) == {"id", "randomNumber"} for r in rows), rows
    assert len(json.loads(get(base + "/queries?queries=foo"))) == 1
    assert len(json.loads(get(base + "/queries?queries=501"))) == 500
    assert len(json.loads(get(base + "/queries"))) == 1
    page = get(base + "/fortunes").decode()
    assert "Additional fortune added at request time." in page, page[:300]
    assert "&lt;script&gt;" in page and "<script>" not in page, page[:300]
    assert "フレームワークのベンチマーク" in page, "UTF-8 lost"
    assert page.count("<tr>") == 14, page.count("<tr>")
    print("ok", base)


if __name__ == "__main__":
    main()
