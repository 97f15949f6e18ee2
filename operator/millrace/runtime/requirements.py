"""The packages a Python step needs, found as Windmill finds them.

In order (windmill-parser-py-imports, parse_python_imports):
1. a lock (the module's `lock`, or a workspace script's): its lines, as pinned;
2. a `#requirements:` header: the `# name` lines under it, and nothing else;
3. a PEP 723 `# /// script` block: its `dependencies`;
4. otherwise `#extra_requirements:` lines, plus one requirement per imported
   package, named by the import's root module (`_` made `-`, Windmill's
   table of known differences, `google.cloud.x` / `azure.x.y` as their
   packages), skipping the standard library and `wmill`, and following
   imported workspace scripts into their own imports. An import line ending
   `# pin: spec` or `# repin: spec` asks for that spec instead. A requirement
   named explicitly (header, pin), here or in an imported script, wins over
   one inferred from an import of the same package.
Pure: the result is sorted, so a set of requirements has one text.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from .imports import python_imports

# One `# name` line of a requirements header (Windmill's RE: `^#\s?(\S+)\s*$`).
_HEADER_LINE = re.compile(r"^#\s?(\S+)\s*$")
_PIN = re.compile(r"#\s*(?:pin|repin):\s*(\S+)")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# Import root (after `_` -> `-`) -> the package that provides it, where the two differ.
PACKAGE_OF_IMPORT = {
    "psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary, pool]", "yaml": "pyyaml", "git": "GitPython",
    "shopify": "ShopifyAPI", "seleniumwire": "selenium-wire", "openbb-terminal": "openbb[all]",
    "riskfolio": "riskfolio-lib", "smb": "pysmb", "PIL": "Pillow", "googleapiclient": "google-api-python-client",
    "dateutil": "python-dateutil", "mailparser": "mail-parser", "mailparser-reply": "mail-parser-reply",
    "gitlab": "python-gitlab", "smbclient": "smbprotocol", "playhouse": "peewee", "dns": "dnspython",
    "msoffcrypto": "msoffcrypto-tool", "tabula": "tabula-py", "shapefile": "pyshp", "sklearn": "scikit-learn",
    "umap": "umap-learn", "cv2": "opencv-python", "atlassian": "atlassian-python-api",
    "mysql": "mysql-connector-python", "tenable": "pytenable", "ns1": "ns1-python", "pymsql": "PyMySQL",
    "haystack": "haystack-ai", "github": "PyGithub", "ldap": "python-ldap", "opensearchpy": "opensearch-py",
    "lokalise": "python-lokalise-api", "msgraph": "msgraph-sdk", "pythonjsonlogger": "python-json-logger",
    "socks": "PySocks", "taiga": "python-taiga", "docx": "python-docx", "vt": "vt-py",
}
# Namespace packages whose distributions are named by more than the root: `google.cloud.storage`.
_NAMESPACE_DEPTH = {"google.cloud": 3, "azure": 3}
_NAMESPACE_EXCEPTIONS = {"azure.storage.filedatalake": "azure-storage-file-datalake"}
# Provided by the step's runtime, never installed: the modules of millrace's SDK (`wmill`, the step API client...).
PROVIDED = frozenset(module.stem for module in (Path(__file__).parent / "sdk").glob("*.py"))


def requirements(code: str, lock: str | None = None, imported: Mapping[str, str] | None = None) -> list[str]:
    """The requirement lines for a Python step; `imported`: workspace path -> code of the scripts it imports."""
    if lock and lock.strip():
        return sorted(dict.fromkeys(line.strip() for line in lock.splitlines()
                                    if line.strip() and not line.lstrip().startswith("#")))
    return sorted(wanted for wanted, _ in _requirements(code, None, imported or {}, set()).values())


Found = dict[str, tuple[str, bool]]  # package name -> (requirement, explicit: a header or pin named it)


def _add(found: Found, requirement: str, explicit: bool) -> None:
    # An explicit requirement, from this script or one it imports, wins over an inferred one.
    name = package_name(requirement)
    if name not in found or (explicit and not found[name][1]):
        found[name] = (requirement, explicit)


def _requirements(code: str, own_path: str | None, imported: Mapping[str, str], visited: set[str]) -> Found:
    lines = code.splitlines()
    found: Found = {}
    header = _header(lines, ("#requirements:", "# requirements:"))
    if header is None:
        header = _inline_metadata(lines)
    if header is not None:
        for requirement in header:
            _add(found, requirement, True)
        return found
    for requirement in _header(lines, ("#extra_requirements:", "# extra_requirements:")) or []:
        _add(found, requirement, True)
    for item in python_imports(code, own_path):
        if item.workspace:
            if item.module in imported and item.module not in visited:
                visited.add(item.module)
                for requirement, explicit in _requirements(imported[item.module], item.module, imported, visited).values():
                    _add(found, requirement, explicit)
            continue
        pin = _PIN.search(lines[item.line - 1]) if item.line <= len(lines) else None
        wanted = pin.group(1) if pin else package_of(item.module)
        if wanted is not None:
            _add(found, wanted, pin is not None)
    return found


def _header(lines: list[str], starts: tuple[str, ...]) -> list[str] | None:
    """The `# name` lines right under the first line that starts with one of `starts`, or None."""
    for index, line in enumerate(lines):
        if line.startswith(starts):
            found = []
            for below in lines[index + 1:]:
                match = _HEADER_LINE.match(below)
                if match is None:
                    break
                found.append(match.group(1))
            return found
    return None


def _inline_metadata(lines: list[str]) -> list[str] | None:
    """The dependencies of a PEP 723 `# /// script` block, or None without one."""
    if "# /// script" not in lines:
        return None
    body = []
    for line in lines[lines.index("# /// script") + 1:]:
        if not line.startswith("#") or line.startswith("# ///"):
            break
        body.append(line[2:] if line.startswith("# ") else line[1:])
    import tomllib  # only a script with such a block needs the parser: every local run imports this module

    try:
        dependencies = tomllib.loads("\n".join(body)).get("dependencies") or []
    except tomllib.TOMLDecodeError:
        return []
    return [str(d) for d in dependencies]


def package_of(module: str) -> str | None:
    """The requirement an import of `module` asks for, or None for the standard library and what is provided."""
    root = module.split(".", 1)[0]
    if root in sys.stdlib_module_names or root in PROVIDED or root == "__future__":
        return None
    if module in _NAMESPACE_EXCEPTIONS:
        return _NAMESPACE_EXCEPTIONS[module]
    for prefix, depth in _NAMESPACE_DEPTH.items():
        parts = module.split(".")
        if module.startswith(prefix + ".") and len(parts) >= depth:
            return "-".join(parts[:depth]).replace("_", "-")
    name = root.replace("_", "-")
    return PACKAGE_OF_IMPORT.get(name, name)


def package_name(requirement: str) -> str:
    """The distribution a requirement line names, normalised: `Six>=1` -> `six`."""
    match = _NAME.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement
