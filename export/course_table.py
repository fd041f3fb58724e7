"""The course's tables, written from the notebooks themselves: README.md's table of notebooks and
TEACHING.md's syllabus, each between its markers.

    python export/course_table.py          # rewrite both tables
    python export/course_table.py --check  # exit 1 if either is out of date (tests run this)

A notebook's row takes its title from its first heading ("# NN · Title") and its learner time
from export/learner_time.py; its Colab badge from the repository's address (colab_cell.py). The
syllabus groups the notebooks into sessions (SESSIONS below); a session is one class of at most
learner_time.MAX_MINUTES minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import colab_cell
import learner_time

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
README = ROOT / "README.md"
TEACHING = ROOT / "TEACHING.md"
MARKERS = {
    "notebooks": ("<!-- notebooks: start (export/course_table.py) -->", "<!-- notebooks: end -->"),
    "syllabus": ("<!-- syllabus: start (export/course_table.py) -->", "<!-- syllabus: end -->"),
}
# (session, its notebooks by number, core or optional): the order a class takes them in
SESSIONS = (
    ("Train a CNN", ("01",), "core"),
    ("Find its mistakes", ("02",), "core"),
    ("White-box explanations", ("03",), "core"),
    ("The end user's surrogate", ("04",), "core"),
    ("Black-box explanations", ("05",), "core"),
    ("Label-only explanations", ("06",), "core"),
    ("Explore the explanations", ("08",), "core"),
    ("Fool a correct CNN", ("09",), "core"),
    ("The model behind a real API", ("07",), "optional"),
    ("Defend the CNN", ("10",), "optional"),
    ("Inside the network", ("11",), "optional"),
    ("Units and frequencies", ("12",), "optional"),
    ("Fix the data and the model", ("13",), "optional"),
    ("Which explanation finds the cause?", ("14",), "optional"),
    ("Generative counterfactuals", ("15",), "optional"),
    ("Defense-GAN", ("16",), "optional"),
)


@dataclass(frozen=True)
class Notebook:
    path: Path
    number: str
    title: str
    minutes: int

    @property
    def link(self) -> str:
        return f"[{self.number} · {self.title}](notebooks/{self.path.name})"


def notebooks() -> dict[str, Notebook]:
    """Every course notebook by its number."""
    found = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        heading = next(
            "".join(c["source"]).splitlines()[0]
            for c in cells
            if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("# ")
        )
        match = re.match(r"# (\d\d) · (.+)", heading)
        if not match or match.group(1) != path.name[:2]:
            wanted = f"# {path.name[:2]} · Title"
            raise SystemExit(f"{path.name}: its first heading must read {wanted!r}")
        minutes = learner_time.estimate(path).minutes
        found[match.group(1)] = Notebook(path, match.group(1), match.group(2), minutes)
    return found


def notebook_table(found: dict[str, Notebook]) -> str:
    badge = colab_cell.badge_link(colab_cell.repository())
    image = "https://colab.research.google.com/assets/colab-badge.svg"
    rows = ["| notebook | learner time | |", "|---|---|---|"]
    for notebook in found.values():
        colab = f"[![Open In Colab]({image})]({badge}notebooks/{notebook.path.name})"
        rows.append(f"| {notebook.link} | {notebook.minutes} min | {colab} |")
    return "\n".join(rows)


def syllabus_table(found: dict[str, Notebook]) -> str:
    listed = [number for _, numbers, _ in SESSIONS for number in numbers]
    missing = sorted(set(found) - set(listed))
    if missing or len(listed) != len(set(listed)):
        raise SystemExit(f"SESSIONS must list every notebook once; missing {missing}")
    rows = ["| session | track | notebooks | learner time |", "|---|---|---|---|"]
    for i, (name, numbers, track) in enumerate(SESSIONS, 1):
        parts = [found[number] for number in numbers]
        minutes = sum(part.minutes for part in parts)
        if minutes > learner_time.MAX_MINUTES:
            raise SystemExit(f"session {name!r} needs {minutes} minutes: more than one class")
        links = "<br>".join(part.link for part in parts)
        rows.append(f"| {i}. {name} | {track} | {links} | {minutes} min |")
    core_numbers = [n for _, numbers, track in SESSIONS if track == "core" for n in numbers]
    core = sum(found[number].minutes for number in core_numbers)
    everything = sum(notebook.minutes for notebook in found.values())
    rows.append("")
    rows.append(
        f"Core track: {core / 60:.1f} hours of learner time; the whole course: "
        f"{everything / 60:.1f} hours."
    )
    return "\n".join(rows)


def fill(text: str, kind: str, table: str) -> str:
    start, end = MARKERS[kind]
    if start not in text or end not in text:
        raise SystemExit(f"no {start} ... {end} block to fill")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n\n{table}\n\n{end}{rest.split(end, 1)[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is out of date")
    args = parser.parse_args()
    found = notebooks()
    stale = []
    for path, kind, table in (
        (README, "notebooks", notebook_table(found)),
        (TEACHING, "syllabus", syllabus_table(found)),
    ):
        text = path.read_text()
        new = fill(text, kind, table)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        sys.exit(f"out of date: {', '.join(stale)}; run python export/course_table.py")
    print("up to date" if not stale else f"wrote {', '.join(stale)}")


if __name__ == "__main__":
    main()
