"""Regenerate exporter/models/table.py (what `edgeport models` prints) with torch and torchvision.

Run after changing the registry in exporter/models/registry.py or upgrading torchvision:
``.venv/bin/python scripts/make_model_table.py``. tests/edgeport/test_cli_messages.py fails when the
checked-in table is stale.
"""

from __future__ import annotations

import pprint
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "exporter" / "model_table.py"


def render(rows: list[dict]) -> str:
    """model_table.py's text with ``rows`` as the generated part."""
    text = TABLE.read_text()
    head, rest = text.split("# -- generated: do not edit by hand", 1)
    _, tail = rest.split("# -- end of generated part", 1)
    body = pprint.pformat(rows, width=110, sort_dicts=False)
    marker = "# -- generated: do not edit by hand " + "-" * 60
    end = "# -- end of generated part " + "-" * 71
    return f"{head}{marker[:97]}\nROWS: list[dict] = {body}\n{end[:97]}{tail[tail.index(chr(10)):]}"


def main() -> None:
    sys.path.insert(0, str(REPO))
    from exporter.models.registry import compute_model_rows

    TABLE.write_text(render(compute_model_rows()))
    print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
