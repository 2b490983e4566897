"""The benchmark page holds one section per benchmark; each run replaces its own."""

from pathlib import Path

TITLE = "# Benchmarks"


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the ``## heading`` section of ``path`` with ``body``, keeping the rest.

    ``body`` starts with its own ``## heading`` line. A missing page or
    section is created.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else TITLE + "\n"
    sections = _split(text)
    replaced = False
    for index, (name, _) in enumerate(sections):
        if name == heading:
            sections[index] = (heading, body.rstrip() + "\n")
            replaced = True
    if not replaced:
        sections.append((heading, body.rstrip() + "\n"))
    parts = [part.strip("\n") for _, part in sections if part.strip()]
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def _split(text: str) -> list[tuple[str, str]]:
    """Split the page at ``## `` headings; the first part is the title."""
    sections: list[tuple[str, str]] = []
    name, lines = "", []
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            sections.append((name, "".join(lines)))
            name, lines = line[3:].strip(), []
        lines.append(line)
    sections.append((name, "".join(lines)))
    return sections
