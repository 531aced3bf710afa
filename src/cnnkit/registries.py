"""Registries of the training ingredients: optimisers, learning-rate schedules and losses.

Each is a table of name -> :class:`Entry` (builder, help line, declared defaults such as an
optimiser's learning rate). The engine fills them with decorators, one function per entry
(``cnnkit.engine.register_optimizer``, ``register_schedule``, ``register_loss``); the config reads
them to validate ``--optimizer``/``--scheduler``/``--loss`` and the CLI to list them in ``--help``.

Why a top-level module and not ``cnnkit.engine``: :mod:`cnnkit.config` needs the names and the engine
needs the config, so the tables sit below both (this module imports nothing of cnnkit but
:mod:`cnnkit.errors`). The built-in entries are registered when :mod:`cnnkit.engine` is imported,
which ``import cnnkit`` (and so any ``import cnnkit.xyz``) always does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigError, suggest

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # one word: a flag value and a YAML scalar


@dataclass(frozen=True)
class Entry(Generic[F]):
    """One registered ingredient: its ``name``, the function ``fn`` that builds it, a one-line
    ``help`` and ``meta``, what it declares about itself (``default_lr`` of an optimiser,
    ``plateau`` of a schedule that follows the validation metric)."""

    name: str
    fn: F
    help: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[F]):
    """Name -> :class:`Entry` table; as a collection it holds the names, in registration order.

    That makes it usable directly as a config field's ``choices`` (``name in registry``, iteration,
    ``len``): what is registered later is accepted and listed without touching the config.
    """

    def __init__(self, kind: str, flag: str) -> None:
        self.kind = kind  # "optimizer", in messages: "unknown optimizer 'x'"
        self.flag = flag  # the config field / CLI flag it serves, e.g. "--optimizer"
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, *, help: str | None = None, **meta: Any) -> Callable[[F], F]:
        """Decorator: register ``fn`` under ``name``; ``help`` defaults to the first line of its docstring."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"{self.kind} name {name!r} must be one word of letters, digits, '_', '-' or '.'"
            )
        if name in self._entries:
            raise RuntimeError(f"{self.kind} {name!r} registered twice (unregister it first to replace it)")

        def deco(fn: F) -> F:
            if not callable(fn):
                raise TypeError(f"{self.kind} {name!r}: expected a function, got {type(fn).__name__}")
            text = help if help is not None else ((fn.__doc__ or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, fn, " ".join(text.split()), dict(meta))
            return fn

        return deco

    def unregister(self, name: str) -> Entry[F]:
        """Remove ``name`` (KeyError if it is not registered) and return its entry."""
        return self._entries.pop(name)

    def get(self, name: str) -> Entry[F]:
        """The entry of ``name``; :class:`ConfigError` with a did-you-mean hint when unknown."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.kind} {name!r}",
                              hint=f"{suggest(str(name), self._entries)} ({self.flag})") from None  # fmt: skip

    def entries(self) -> list[Entry[F]]:
        return list(self._entries.values())

    def view(self, key: str) -> Mapping[str, Any]:
        """A live read-only mapping name -> ``meta[key]`` (e.g. every optimiser's ``default_lr``)."""
        return _MetaView(self, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


class _MetaView(Mapping[str, Any]):
    """``registry.view(key)``: the entries declaring ``key``, read at each access (never stale).

    An unknown name raises the registry's :class:`ConfigError` (did you mean ...), not a bare KeyError.
    """

    def __init__(self, registry: Registry, key: str) -> None:
        self._registry, self._key = registry, key

    def __getitem__(self, name: str) -> Any:
        meta = self._registry.get(name).meta
        if self._key not in meta:
            raise KeyError(name)
        return meta[self._key]

    def __contains__(self, name: object) -> bool:
        return name in self._registry and self._key in self._registry.get(name).meta  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter([e.name for e in self._registry.entries() if self._key in e.meta])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr(dict(self))


# builder(param_groups, lr, cfg) -> torch.optim.Optimizer; meta: default_lr
OPTIMIZERS: Registry = Registry("optimizer", "--optimizer")
# factor(progress) -> multiplier of the base learning rate; meta: plateau
SCHEDULES: Registry = Registry("learning-rate schedule", "--scheduler")
# builder(label_smoothing) -> loss module, called as loss(scores, targets)
LOSSES: Registry = Registry("loss", "--loss")
