"""
Checks of an ASDF file's YAML tree before asdf parses, converts or validates it.

asdf builds and validates the whole tree, expanding YAML aliases as it walks:
a few hundred bytes of nested aliases (a "billion laughs" file) then cost
hours.  lenskit files are small trees whose arrays live in binary blocks, so
before asdf sees a file lenskit reads its YAML header alone and refuses:

* a header over `MAX_HEADER_BYTES`;
* a tree that aliases expand far beyond its written size (more than
  `MAX_EXPANSION` times its distinct nodes plus `EXPANSION_SLACK`), or
  aliases that refer to themselves;
* arrays stored in another file (``source:`` naming a path or URL), which a
  lenskit file never needs and which would read files the user did not name.

The check composes the YAML into nodes (aliases stay shared references, so
composing costs the header's size) and counts the expanded tree with one
memoised pass; it takes milliseconds for any lenskit file.
"""

import re

import yaml

from lenskit.core.exceptions import LenskitFileError

__all__ = ["check_header", "MAX_HEADER_BYTES", "MAX_EXPANSION", "EXPANSION_SLACK"]

#: Largest YAML header accepted (bytes); lenskit writes kilobytes.
MAX_HEADER_BYTES = 64 << 20
#: Aliases may expand the tree at most this many times its distinct nodes ...
MAX_EXPANSION = 10
#: ... plus this many nodes.
EXPANSION_SLACK = 100_000

_BLOCK_MAGIC = b"\xd3BLK"
_YAML_END = re.compile(rb"\r?\n\.\.\.[ \t]*\r?\n")


def _header(path):
    with open(path, "rb") as f:
        head = f.read(MAX_HEADER_BYTES + 1)
    if not head.startswith(b"#ASDF"):
        raise LenskitFileError(f"{path} is not an ASDF file (it does not start with '#ASDF')")
    end = _YAML_END.search(head)
    block = head.find(_BLOCK_MAGIC)
    if end is not None and (block < 0 or end.end() <= block):
        return head[:end.end()]
    if block >= 0:
        return head[:block]
    if len(head) > MAX_HEADER_BYTES:
        raise LenskitFileError(f"{path}: its YAML tree exceeds {MAX_HEADER_BYTES >> 20} MiB; lenskit files keep "
                               f"their arrays in binary blocks and their trees small")
    return head


def _children(node):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield k
            yield v
    elif isinstance(node, yaml.SequenceNode):
        yield from node.value


def _check_external(path, node):
    if isinstance(node, yaml.MappingNode) and "ndarray" in (node.tag or ""):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "source" and isinstance(v, yaml.ScalarNode) \
                    and not v.tag.endswith(":int"):
                raise LenskitFileError(
                    f"{path}: an array refers to data in another file ({v.value!r}); lenskit files hold all "
                    f"their arrays and never read other files")


def check_header(path):
    """
    Refuse an ASDF file whose YAML tree is oversized, an alias bomb, or refers to other files.

    Raises
    ------
    LenskitFileError
        Naming the file and the problem; nothing else is read.
    """

    text = _header(path)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise LenskitFileError(f"{path}: its YAML tree is not valid YAML (truncated or corrupt?): "
                               f"{str(exc).splitlines()[0]}") from exc
    if root is None:
        raise LenskitFileError(f"{path} holds an empty ASDF tree")
    # one post-order pass: expanded size of every distinct node, aliases counted as often as they occur
    size = {}
    stack = [(root, False)]
    ancestors = set()
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            ancestors.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:
            continue
        if key in ancestors:
            raise LenskitFileError(f"{path}: its YAML tree holds an alias that refers to itself; lenskit files "
                                   f"never do")
        _check_external(path, node)
        ancestors.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    distinct, expanded = len(size), size[id(root)]
    if expanded > MAX_EXPANSION * distinct + EXPANSION_SLACK:
        raise LenskitFileError(
            f"{path}: YAML aliases expand its tree of {distinct:,} nodes to {expanded:,} (an 'alias bomb'); "
            f"refused before reading it")
    return distinct, expanded
