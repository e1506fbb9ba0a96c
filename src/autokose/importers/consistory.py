"""The ConsiStory+ layout (the 1Prompt1Story paper's benchmark file, `consistory+.yaml`).

    animals:                                  # a domain: a list of concepts
      - id: 1                                 # optional
        style: A photo of                     # optional; goes first in every prompt
        subject: a golden retriever           # who must stay the same in every frame
        concept_token: [retriever]            # optional: the subject's word(s) a method attends to
        settings:                             # one frame each
          - running on a beach
          - sleeping by a fireplace

A top-level list of concepts (no domains) reads the same. Each concept is one board; frame k's
prompt is "{style} {subject} {settings[k]}", as the benchmark's own generation script builds
it, and the setting itself is the scene's `setting` (previz draws what it recognises). The
concept's fields (domain, id, style, subject, concept_token, and the shared "{style} {subject}"
as `id_prompt`) are kept in the story's `extra.source`. Errors name the YAML line.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from autokose.errors import InputError
from autokose.importers.builder import Entry
from autokose.story import check_text


def read(path: Path, text: str) -> list[Entry]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
        check_text(data)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply") from None
    except ValueError as e:  # check_text's
        raise InputError(f"{path}: {e}") from None
    finally:
        loader.dispose()
    if isinstance(data, list):
        domains = [("", node, data)]
    elif isinstance(data, dict) and len(data) == len(node.value):  # keys in the file's order, none twice
        domains = [(str(k.value), v, concepts) for (k, v), concepts in zip(node.value, data.values())]
    elif isinstance(data, dict):
        raise InputError(f"{path}: a domain appears twice")
    else:
        raise InputError(f"{path}: expected domains of concepts (animals: [{{subject: ..., settings: [...]}}])")
    entries: list[Entry] = []
    for domain, seq, concepts in domains:
        where = f"{path}:{seq.start_mark.line + 1}"
        if not isinstance(concepts, list):
            raise InputError(f"{where}: {f'domain {domain!r}' if domain else 'the file'} must be a list of concepts")
        for n, (item, concept) in enumerate(zip(seq.value, concepts), 1):
            entries += concept_entries(concept, n, path, item.start_mark.line + 1, _setting_lines(item), domain)
    return entries


def _setting_lines(item) -> list[int]:
    """The YAML line of each of a concept's settings (its own line where `settings` is a mapping's list)."""
    if isinstance(item, yaml.MappingNode):
        for key, value in item.value:
            if key.value == "settings" and isinstance(value, yaml.SequenceNode):
                return [v.start_mark.line + 1 for v in value.value]
    return []


def concept_entries(concept, index: int, path: Path, line: int, lines: list[int], domain: str = "") -> list[Entry]:
    """One Entry per setting of a concept mapping (the `index`-th of its domain, at `line` of `path`);
    `lines` gives each setting's own line where the file has one."""
    where = f"{path}:{line}"
    if not isinstance(concept, dict):
        raise InputError(f"{where}: a concept is a mapping with subject and settings")
    subject, style, settings = concept.get("subject"), concept.get("style", ""), concept.get("settings")
    if not isinstance(subject, str) or not subject.strip():
        raise InputError(f"{where}: subject: give the subject as text (e.g. \"a golden retriever\")")
    if not isinstance(style, str):
        raise InputError(f"{where}: style must be text")
    if not isinstance(settings, list) or not settings:
        raise InputError(f"{where}: settings: give a list of at least one setting")
    tokens = concept.get("concept_token", [])
    tokens = [tokens] if isinstance(tokens, str) else tokens
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise InputError(f"{where}: concept_token must be a word or a list of words")
    domain = domain or str(concept.get("domain", "") or "")  # a JSONL concept may name its own
    ident = concept.get("id", index)
    ident = f"{ident:03d}" if isinstance(ident, int) and not isinstance(ident, bool) else str(ident)
    name = "-".join(str(p) for p in (domain, ident, tokens[0] if tokens else subject) if str(p).strip())
    subject_info = {"domain": domain, "id": ident, "style": style, "subject": subject, "concept_token": tokens,
                    "id_prompt": " ".join(p.strip() for p in (style, subject) if p.strip())}
    entries = []
    for k, setting in enumerate(settings):
        at = lines[k] if k < len(lines) else line
        if not isinstance(setting, str):
            raise InputError(f"{path}:{at}: settings[{k}] must be text")
        prompt = " ".join(p.strip() for p in (style, subject, setting) if p.strip())
        entries.append(Entry(prompt, at, name, {"setting": setting.strip()}, subject=subject_info))
    return entries
