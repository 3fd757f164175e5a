"""Sphinx directives that build parts of the guidekit docs from the code and the committed results.

* ``.. guidekit-cli::`` walks :func:`guidekit.cli.build_parser` (with every installed plugin's
  sub-commands) and writes one section per sub-command: usage, description, options, examples.
* ``.. markdown-file:: PATH`` renders a committed Markdown file (results READMEs, ``matched_accuracy.md``)
  with its tables, lists, code blocks and inline code, so result tables are shown from the file that
  the study wrote, never copied by hand. ``:start-after:`` / ``:end-before:`` select a part of it.
* ``.. adm-releases::`` tabulates the released ADM checkpoints known to ``guidekit_adm`` with their
  download addresses and the README's sampling suggestions.

Nodes are built directly (no reStructuredText is generated), so help texts with ``*``, ``|`` or
backticks render as written.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

# ---------------------------------------------------------------------------------------------------------------
# Markdown (the subset the results files use)

_INLINE = re.compile(r"(``[^`]+``|`[^`]+`|\*\*[^*]+\*\*|\[[^\]]+\]\([^)\s]+\))")


def inline(text: str) -> list[nodes.Node]:
    """Inline Markdown: ``code``, **strong**, [text](url); everything else is plain text."""
    out: list[nodes.Node] = []
    for part in _INLINE.split(text):
        if not part:
            continue
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            code = part.strip("`")
            out.append(nodes.literal(code, code))
        elif part.startswith("**") and part.endswith("**") and len(part) > 4:
            out.append(nodes.strong("", "", *inline(part[2:-2])))
        elif part.startswith("[") and part.endswith(")") and "](" in part:
            label, _, url = part[1:-1].partition("](")
            out.append(nodes.reference("", "", *inline(label), refuri=url))
        else:
            out.append(nodes.Text(part))
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> nodes.table:
    header = _cells(lines[0])
    body = [_cells(line) for line in lines[2:] if line.strip()]
    width = max([len(header), *map(len, body)])
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=width)
    table += group
    for _ in range(width):
        group += nodes.colspec(colwidth=1)

    def row(cells: list[str]) -> nodes.row:
        r = nodes.row()
        for i in range(width):
            r += nodes.entry("", nodes.paragraph("", "", *inline(cells[i] if i < len(cells) else "")))
        return r

    head = nodes.thead()
    head += row(header)
    group += head
    tbody = nodes.tbody()
    for cells in body:
        tbody += row(cells)
    group += tbody
    return table


def markdown_nodes(text: str) -> list[nodes.Node]:
    """Block-level Markdown → docutils nodes: headings (as rubrics), paragraphs, bullet lists, pipe
    tables and fenced code blocks."""
    lines = text.splitlines()
    out: list[nodes.Node] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
        elif stripped.startswith("```"):
            language = stripped[3:].strip() or "text"
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            code = "\n".join(lines[i + 1 : j])
            block = nodes.literal_block(code, code, language=language)
            out.append(block)
            i = j + 1
        elif stripped.startswith("#"):
            out.append(nodes.rubric("", "", *inline(stripped.lstrip("#").strip())))
            i += 1
        elif stripped.startswith("|"):
            j = i
            while j < len(lines) and lines[j].strip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif stripped[:2] in ("* ", "- "):
            bullets = nodes.bullet_list()
            while i < len(lines) and lines[i].strip()[:2] in ("* ", "- ") and not lines[i].startswith(" " * 4):
                item = [lines[i].strip()[2:]]
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() \
                        and lines[i].strip()[:2] not in ("* ", "- "):
                    item.append(lines[i].strip())
                    i += 1
                bullets += nodes.list_item("", nodes.paragraph("", "", *inline(" ".join(item))))
                while i < len(lines) and not lines[i].strip() and i + 1 < len(lines) \
                        and lines[i + 1].strip()[:2] in ("* ", "- "):
                    i += 1
            out.append(bullets)
        else:
            para = [stripped]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith(("|", "#", "```", "* ", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(nodes.paragraph("", "", *inline(" ".join(para))))
    return out


class MarkdownFile(SphinxDirective):
    """``.. markdown-file:: ../benchmarks/results/compare/README.md`` (path relative to this document)."""

    required_arguments = 1
    option_spec = {"start-after": directives.unchanged, "end-before": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        rel, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(rel)
        text = Path(path).read_text(encoding="utf-8")
        for option, keep in (("start-after", 1), ("end-before", 0)):
            marker = self.options.get(option)
            if marker is None:
                continue
            if marker not in text:
                raise self.error(f"{self.arguments[0]}: {option} marker {marker!r} not found")
            text = text.split(marker, 1)[keep]
        source = nodes.paragraph("", "", nodes.emphasis("", "From "), nodes.literal(rel, self.arguments[0].lstrip("./")))
        source["classes"].append("markdown-source")
        return [*markdown_nodes(text), source]


# ---------------------------------------------------------------------------------------------------------------
# The command line


def _option_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    try:
        text = formatter._expand_help(action) if action.help else ""
    except (KeyError, TypeError, ValueError):
        text = action.help or ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        text = (text + " " if text else "") + "Choices: " + ", ".join(map(str, action.choices)) + "."
    default = action.default
    shown = default not in (None, False, argparse.SUPPRESS) and default != [] and action.nargs != 0
    if shown and "default" not in text.lower():
        text = (text + " " if text else "") + f"Default: {default}."
    if isinstance(action, argparse.BooleanOptionalAction) and isinstance(default, bool):
        flag = action.option_strings[0 if default else 1]
        text = (text + " " if text else "") + f"Default: {flag}."
    return text


def _option_term(action: argparse.Action) -> str:
    if not action.option_strings:
        return action.metavar if isinstance(action.metavar, str) else action.dest
    nargs = action.nargs
    if nargs == 0 or isinstance(action, argparse.BooleanOptionalAction):
        return ", ".join(action.option_strings)
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return ", ".join(f"{o} {metavar}" for o in action.option_strings)


def _options(parser: argparse.ArgumentParser) -> nodes.definition_list:
    dl = nodes.definition_list()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        term = nodes.term("", "", nodes.literal(_option_term(action), _option_term(action)))
        body = nodes.definition("", nodes.paragraph("", "", nodes.Text(_option_help(parser, action) or "")))
        dl += nodes.definition_list_item("", term, body)
    return dl


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return out


def _section(name: str, parser: argparse.ArgumentParser, summary: str, document: Any) -> nodes.section:
    section = nodes.section(ids=[nodes.make_id(f"cli {name}")])
    section += nodes.title(name, name)
    if summary:
        section += nodes.paragraph("", "", nodes.Text(summary[:1].upper() + summary[1:] + "."))
    usage = parser.format_usage().strip().removeprefix("usage: ")
    section += nodes.literal_block(usage, usage, language="text")
    if parser.description and parser.description.strip() != summary.strip():
        section += nodes.paragraph("", "", *inline(" ".join(parser.description.split())))
    section += _options(parser)
    if parser.epilog:
        epilog = parser.epilog.strip()
        section += nodes.rubric("", "Examples and notes")
        section += nodes.literal_block(epilog, epilog, language="text")
    for sub_name, sub, sub_summary in _subcommands(parser):
        section += _section(f"{name} {sub_name}", sub, sub_summary, document)
    document.note_implicit_target(section, section)
    return section


class GuidekitCLI(SphinxDirective):
    """``.. guidekit-cli::``: every sub-command of the installed ``guidekit`` command."""

    def run(self) -> list[nodes.Node]:
        from guidekit.cli import build_parser

        parser = build_parser()
        usage = parser.format_help().strip()
        out: list[nodes.Node] = [nodes.literal_block(usage, usage, language="text")]
        for name, sub, summary in _subcommands(parser):
            out.append(_section(f"guidekit {name}", sub, summary, self.state.document))
        return out


# ---------------------------------------------------------------------------------------------------------------
# Released checkpoints


class AdmReleases(SphinxDirective):
    """``.. adm-releases::``: name, kind, size, download address and README suggestions of every release."""

    def run(self) -> list[nodes.Node]:
        import guidekit_adm as adm

        header = "| release | kind | image size | download | paired classifier | classifier scale | respacing |"
        rows = [header, "|" + "---|" * 7]
        for name in adm.release_names():
            r = adm.release(name)
            url, _, note = r.url.partition(" ")
            link = f"[{r.checkpoint}]({url})" + (f" {note}" if note else "")
            rows.append(f"| `{name}` | {r.kind} | {r.kwargs.get('image_size', '')} | {link} | "
                        f"{'`' + r.classifier + '`' if r.classifier else '—'} | "
                        f"{'—' if r.classifier_scale is None else r.classifier_scale} | {r.suggested_respacing} |")
        return markdown_nodes("\n".join(rows))


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("markdown-file", MarkdownFile)
    app.add_directive("guidekit-cli", GuidekitCLI)
    app.add_directive("adm-releases", AdmReleases)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
