"""Reading a source document so that no field goes unnoticed.

A `Source` is the value at one path of a document. Converters read through it with typed
getters (`text`, `integer`, `child`, ...), which check the type, name the path in any
error, and mark the field as read. Fields a converter knows it cannot map are marked with
`dropped` or `changed` and a reason. When the converter is done, `Tracker.leftovers` lists
every field nobody read, so that none is dropped without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from plinth.convert.report import ConversionError, Finding, Key, Path, Severity, format_path


def is_empty(value: Any) -> bool:
    """Values that say nothing (null, {}, []), which are never reported as left over."""
    return value is None or (isinstance(value, Mapping | list) and not value)


class Tracker:
    """The fields of one document that were read, and the findings about them."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.findings: list[Finding] = []
        self._read: set[Path] = set()

    def mark(self, path: Path) -> None:
        self._read.add(path)

    def note(self, path: Path, severity: Severity, reason: str, *, mark: bool = True) -> None:
        """A finding about `path`; `mark` counts the whole value there as read."""
        if mark:
            self._read.add(path)
        self.findings.append(Finding(format_path(path), severity, reason))

    def leftovers(self) -> list[Path]:
        """The highest paths under which nothing was read (empty values aside)."""
        partly_read = {path[:end] for path in self._read for end in range(len(path))}
        found: list[Path] = []
        self._walk((), self.root, partly_read, found)
        return found

    def _walk(self, path: Path, value: Any, partly_read: set[Path], found: list[Path]) -> None:
        if path in self._read or is_empty(value):
            return
        if path not in partly_read or not isinstance(value, Mapping | list):
            found.append(path)
            return
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            self._walk((*path, key), item, partly_read, found)


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Source:
    """The value at `path` of a source document; every read through it is tracked."""

    tracker: Tracker
    path: Path
    value: Any

    @classmethod
    def document(cls, root: Mapping[str, Any]) -> Source:
        return cls(Tracker(root), (), root)

    # -- where, and failing there -------------------------------------------------------

    def where(self, *keys: Key) -> str:
        return format_path((*self.path, *keys))

    def fail(self, problem: str, *keys: Key) -> NoReturn:
        raise ConversionError(self.where(*keys), problem)

    # -- structure (not marked: what is under it is) ------------------------------------

    def has(self, key: Key) -> bool:
        return not is_empty(self._get(key))

    def fields(self) -> list[str]:
        return [str(key) for key in self._mapping()]

    def child(self, key: Key) -> Source | None:
        """The mapping under `key`, or None when it is absent or empty."""
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(f"must be a mapping; got {_type_name(value)}", key)
        return Source(self.tracker, (*self.path, key), value)

    def under(self, *keys: Key) -> Source | None:
        """The mapping at `keys` below this one, or None when any of them is absent."""
        found: Source | None = self
        for key in keys:
            found = found.child(key) if found is not None else None
        return found

    def require(self, key: Key) -> Source:
        child = self.child(key)
        if child is None:
            self.fail("is required", key)
        return child

    def children(self, key: Key) -> list[Source]:
        """The mappings in the list under `key` ([] when absent)."""
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(f"must be a list; got {_type_name(value)}", key)
        path = (*self.path, key)
        sources = [Source(self.tracker, (*path, index), item) for index, item in enumerate(value)]
        for source in sources:
            if not isinstance(source.value, Mapping):
                source.fail(f"must be a mapping; got {_type_name(source.value)}")
        return sources

    # -- typed reads (marked) -----------------------------------------------------------

    def raw(self, key: Key) -> Any:
        """The value under `key` as it is (None when absent), marked as read."""
        self.tracker.mark((*self.path, key))
        return self._get(key)

    def text(self, key: Key) -> str | None:
        value = self.raw(key)
        if value is None or isinstance(value, str):
            return value
        self.fail(f"must be a string; got {_type_name(value)} {value!r}", key)

    def integer(self, key: Key) -> int | None:
        value = self.raw(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        self.fail(f"must be an integer; got {_type_name(value)} {value!r}", key)

    def number(self, key: Key) -> float | None:
        value = self.raw(key)
        if value is None:
            return None
        try:
            if not isinstance(value, bool):
                return float(value)
        except (TypeError, ValueError):
            pass
        self.fail(f"must be a number; got {_type_name(value)} {value!r}", key)

    def flag(self, key: Key) -> bool | None:
        value = self.raw(key)
        if value is None or isinstance(value, bool):
            return value
        self.fail(f"must be true or false; got {_type_name(value)} {value!r}", key)

    def texts(self, key: Key) -> list[str] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        self.fail("must be a list of strings", key)

    def string_map(self, key: Key) -> dict[str, str] | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
            return {str(k): v for k, v in value.items()}
        self.fail("must be a mapping of strings to strings", key)

    # -- findings -----------------------------------------------------------------------

    def take(self, *keys: Key) -> None:
        """Mark fields as read whose meaning Plinth already has (identity, defaults)."""
        for key in keys:
            self.tracker.mark((*self.path, key))

    def changed(self, key: Key, reason: str) -> None:
        """Note that `key`, when set, maps to something that behaves differently."""
        if self.has(key):
            self.tracker.note((*self.path, key), Severity.CHANGED, reason)

    def dropped(self, key: Key, reason: str) -> None:
        """Note that `key`, when set, has no equivalent and is left out."""
        if self.has(key):
            self.tracker.note((*self.path, key), Severity.DROPPED, reason)

    def note(self, severity: Severity, reason: str, *keys: Key, mark: bool = True) -> None:
        """A finding about this value (or a path under it, set or not); with `mark`, what
        is there counts as read."""
        self.tracker.note((*self.path, *keys), severity, reason, mark=mark)

    # -- internals ----------------------------------------------------------------------

    def _mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.value, Mapping):
            self.fail(f"must be a mapping; got {_type_name(self.value)}")
        return self.value

    def _get(self, key: Key) -> Any:
        if isinstance(key, int):
            return self.value[key] if isinstance(self.value, list) else None
        return self._mapping().get(key)
